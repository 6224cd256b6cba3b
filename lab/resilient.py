"""A lab router with resilient ECMP hashing: BIRD's multipath routes mirrored as resilient nexthop groups.

BIRD 2 programs plain multipath routes, which the kernel hashes by hash-threshold: when a next hop leaves
or returns, the hash space is cut anew and flows of the *other* next hops move too (a TCP flow that moves
to a node without its socket is reset). A router with resilient hashing instead keeps a table of buckets
per route: a leaving next hop's buckets go to the survivors, every other bucket stays where it was.

Here BIRD exports its routes into a kernel table of their own (`BirdRouter(..., kernel_table=N)`), and a
`ResilientMirror` thread polls that table (every 10 ms, through long-lived `ip -batch` readers) and keeps
the main table in step: each prefix gets `ip route replace PREFIX nhid G`, where G is a nexthop group
`type resilient` whose members follow BIRD's next hops. A change of members is `ip nexthop replace id G
group ... type resilient`, which keeps the buckets of the surviving members (`ip nexthop bucket show id
G` shows them). Everything happens inside the router namespace the lab made.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from lab.procs import run

KERNEL_TABLE = 100  # where BIRD's routes go when the mirror programs the main table
BUCKETS = 128
IDLE_TIMER = 120  # seconds a bucket must be idle before a returning next hop may take it (the kernel's default)
MEMBER_IDS = 1  # nexthop ids of single next hops start here; groups at GROUP_IDS
GROUP_IDS = 10000


@dataclass
class ResilientMirror:
    """Mirror the multipath routes of `table` into the main table as resilient nexthop groups."""

    netns: str
    table: int = KERNEL_TABLE
    interval: float = 0.01
    buckets: int = BUCKETS
    idle_timer: int = IDLE_TIMER
    groups: dict[str, int] = field(default_factory=dict)  # prefix -> group id
    members: dict[tuple[str, str], int] = field(default_factory=dict)  # (gateway, dev) -> nexthop id
    current: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # prefix -> members now
    errors: list[str] = field(default_factory=list)  # a command the kernel refused (a test reads them)
    changes: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"resilient-{self.netns}", daemon=True)
        self._readers: dict[int, subprocess.Popen[str]] = {}

    # ---- lifecycle
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; the routes and groups stay (they go with the namespace)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for reader in self._readers.values():
            with contextlib.suppress(OSError):
                if reader.stdin is not None:
                    reader.stdin.close()
            try:
                reader.wait(timeout=2)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait(timeout=2)
        self._readers.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:
                self.errors.append(f"sync: {exc!r}")
            self._stop.wait(self.interval)

    # ---- one pass
    def learned(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """BIRD's routes in `table`: prefix -> sorted (gateway, dev) next hops."""
        routes: dict[str, tuple[tuple[str, str], ...]] = {}
        for version in (4, 6):
            for route in self._read(version):
                dst = route.get("dst", "")
                if not dst or dst == "default":
                    continue
                prefix = str(ipaddress.ip_network(dst))
                hops = [route] if "gateway" in route else route.get("nexthops", [])
                found = sorted({(hop["gateway"], hop.get("dev", "")) for hop in hops if "gateway" in hop})
                if found:
                    routes[prefix] = tuple(found)
        return routes

    def sync(self) -> None:
        learned = self.learned()
        for prefix in [p for p in self.current if p not in learned]:
            self._remove(prefix)
        for prefix, hops in learned.items():
            if self.current.get(prefix) != hops:
                self._program(prefix, hops)

    def _program(self, prefix: str, hops: tuple[tuple[str, str], ...]) -> None:
        ids = [self._member(gateway, dev) for gateway, dev in hops]
        group = "/".join(str(i) for i in ids)
        if prefix in self.groups:  # in place: surviving members keep their buckets
            self._ip("nexthop", "replace", "id", str(self.groups[prefix]), "group", group, "type", "resilient")
        else:
            gid = GROUP_IDS + len(self.groups)
            while gid in self.groups.values():
                gid += 1
            self._ip(
                "nexthop", "add", "id", str(gid), "group", group, "type", "resilient",
                "buckets", str(self.buckets), "idle_timer", str(self.idle_timer),
            )  # fmt: skip
            self.groups[prefix] = gid
            self._ip("route", "replace", prefix, "nhid", str(gid))
        self.current[prefix] = hops
        self.changes += 1

    def _remove(self, prefix: str) -> None:
        """The last next hop went: the route goes (deleting the group deletes the routes using it)."""
        gid = self.groups.pop(prefix)
        self._ip("nexthop", "del", "id", str(gid))
        del self.current[prefix]
        self.changes += 1

    def _member(self, gateway: str, dev: str) -> int:
        if (gateway, dev) not in self.members:
            nid = MEMBER_IDS + len(self.members)
            self._ip("nexthop", "replace", "id", str(nid), "via", gateway, *(["dev", dev] if dev else []))
            self.members[(gateway, dev)] = nid
        return self.members[(gateway, dev)]

    def buckets_of(self, prefix: str) -> list[int]:
        """The member nexthop id of each bucket of `prefix`'s group, by bucket index (`ip nexthop bucket`)."""
        out = run("ip", "-n", self.netns, "-j", "nexthop", "bucket", "show", "id", str(self.groups[prefix])).stdout
        entries = sorted(json.loads(out or "[]"), key=lambda b: b["bucket"]["index"])
        return [int(b["bucket"]["nhid"]) for b in entries]

    def member_id(self, gateway: str) -> int:
        return next(nid for (gw, _), nid in self.members.items() if gw == gateway)

    def _ip(self, *args: str) -> None:
        result = run("ip", "-n", self.netns, *args, check=False)
        if result.returncode != 0:
            self.errors.append(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def _read(self, version: int) -> list[dict[str, Any]]:
        reader = self._readers.get(version)
        if reader is None or reader.poll() is not None:
            reader = subprocess.Popen(
                ["ip", "-n", self.netns, f"-{version}", "-j", "-batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            self._readers[version] = reader
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write(f"route show table {self.table}\n")
        reader.stdin.flush()
        try:
            routes = json.loads(reader.stdout.readline() or "[]")
        except json.JSONDecodeError:
            return []
        return [r for r in routes if isinstance(r, dict)]
