"""The fast lab: a router and N nodes in network namespaces, up in about a second, gone without a trace.

    with FastLab(workdir, prefix="ob1", nodes=2) as lab:
        lab.wait_nexthops("203.0.113.10/32", lab.node_ips(4))
        lab.supervisor.kill("ob1n1-haproxy", signal.SIGKILL)

Everything runs as children of this process (see `lab.procs`); `down()` stops exactly those and deletes the
namespaces it created, also after a failure half-way through `up()`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.fastnode import DEFAULT_VIPS, NODE_ASN, FastNode
from lab.netns import LabNetwork
from lab.procs import Supervisor, netns_exec, run, wait_for
from lab.resilient import KERNEL_TABLE, ResilientMirror
from lab.router import BirdRouter, FrrRouter, Peer, Router, fib_nexthops
from ober_health.config import VipConfig


class FastLab:
    def __init__(
        self,
        workdir: Path,
        prefix: str = "ober",
        nodes: int = 2,
        router: str = "bird",
        vips: tuple[str | Mapping[str, Any], ...] = DEFAULT_VIPS,
        health_overrides: Mapping[str, Any] | None = None,
        bfd: bool = False,
        ecmp: str = "multipath",
        client: bool = False,
        api_process: Callable[[FastNode], str | None] | None = None,
    ) -> None:
        """`ecmp`: "multipath" (the router's kernel hashes BIRD's multipath routes by hash-threshold: a
        next hop that leaves moves other next hops' flows too) or "resilient" (BIRD's routes mirrored as
        resilient nexthop groups by lab.resilient: only the leaving next hop's flows move; BIRD only).
        `client`: a client namespace behind the router (`client_ns`), whose flows the router forwards.
        `api_process`: per node, the command ExaBGP runs instead of ober-health (None: ober-health)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(workdir)
        self.network = LabNetwork(prefix)
        self.node_count = nodes
        self.router_kind = router
        self.vip_entries = vips  # `ober_vips`, as an inventory says them
        self.vips: tuple[VipConfig, ...] = ()  # the model's VIPs, once the nodes' data is validated
        self.health_overrides = health_overrides
        self.bfd = bfd
        if ecmp not in ("multipath", "resilient"):
            raise ValueError(f"ecmp: {ecmp!r} is not one of 'multipath', 'resilient'")
        if ecmp == "resilient" and router != "bird":
            raise ValueError("ecmp: 'resilient' needs router='bird' (the mirror reads BIRD's kernel table)")
        self.ecmp = ecmp
        self.client = client
        self.api_process = api_process
        self.client_ns = ""
        self.mirror: ResilientMirror | None = None
        self.nodes: dict[str, FastNode] = {}
        self.router: Router | None = None
        self.timings: dict[str, float] = {}

    # ---- lifecycle
    def up(self) -> FastLab:
        started = time.monotonic()
        try:
            self._up(started)
        except BaseException:
            self.down()
            raise
        return self

    def _up(self, started: float) -> None:
        self.network.create_router()
        hosts = [self.network.add_host(f"{self.network.prefix}n{i}", i) for i in range(1, self.node_count + 1)]
        for host in hosts:
            node = FastNode(host, self.workdir / host.name, self.supervisor, self.vip_entries, self.health_overrides)
            self.nodes[host.name] = node
            if self.api_process is not None:
                node.api_command = self.api_process(node)
            self.vips = node.vips
            for vip in node.vips:  # what ober-vips.service does on a node
                self.network.add_address(host.name, vip.prefix)
        if self.client:
            self.client_ns = self.network.add_client()
        self.timings["network"] = time.monotonic() - started
        peers = [Peer(h.name, h.ipv4, h.ipv6, NODE_ASN, bfd=self.bfd) for h in hosts]
        if self.router_kind not in ("bird", "frr"):
            raise ValueError(f"router: {self.router_kind!r} is not one of 'bird', 'frr'")
        if self.router_kind == "bird":
            table = KERNEL_TABLE if self.ecmp == "resilient" else None
            self.router = BirdRouter(self.network.router, self.workdir, self.supervisor, peers, kernel_table=table)
        else:
            self.router = FrrRouter(self.network.router, self.workdir, self.supervisor, peers)
        if self.ecmp == "resilient":
            self.mirror = ResilientMirror(self.network.router)
            self.mirror.start()
        self.router.start()
        self.timings["router"] = time.monotonic() - started
        for node in self.nodes.values():
            node.start()
        self.timings["spawn"] = time.monotonic() - started
        for vip in self.vips:
            self.wait_nexthops(vip.prefix, self.node_ips(vip.prefix), timeout=15)
        self.timings["routes"] = time.monotonic() - started

    def down(self) -> None:
        """Stop everything and delete the namespaces; a second call does nothing."""
        if "down" in self.timings:
            return
        started = time.monotonic()
        if self.mirror is not None:
            self.mirror.stop()
        self.supervisor.stop_all()
        # grandchildren in their own process group (ExaBGP's API process) are ours too: finish them
        self.leftovers = self.network.kill_leftovers()
        if self.router is not None:
            self.router.cleanup()
        self.network.delete()
        self.timings["down"] = time.monotonic() - started

    def __enter__(self) -> FastLab:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.down()

    # ---- what a test or a person looks at
    @property
    def router_ns(self) -> str:
        return self.network.router

    def node_ips(self, prefix: str, nodes: list[str] | None = None) -> set[str]:
        """The next hops the router should have for `prefix` when `nodes` (default: all) announce it."""
        v6 = ipaddress.ip_network(prefix).version == 6
        names = nodes if nodes is not None else list(self.nodes)
        return {self.nodes[n].host.ipv6 if v6 else self.nodes[n].host.ipv4 for n in names}

    def nexthops(self, prefix: str) -> set[str]:
        return set(fib_nexthops(self.router_ns, prefix))

    def wait_nexthops(self, prefix: str, expected: set[str], timeout: float = 10.0) -> float:
        """Seconds until the router's FIB has exactly `expected` as next hops of `prefix`."""
        return wait_for(
            lambda: self.nexthops(prefix) == expected,
            timeout=timeout,
            what=f"next hops of {prefix} at the router to be {sorted(expected) or 'none'}"
            f" (last seen: {sorted(self.nexthops(prefix))})",
            interval=0.005,
        )

    def request(self, vip: VipConfig, timeout: float = 2.0) -> tuple[bool, str]:
        """One HTTP request from the router namespace to the VIP: (succeeded, body or error)."""
        url = f"http://{vip.bind_host}:80/"
        result = run(
            *netns_exec(self.router_ns, "curl", "-sS", "-g", "--max-time", str(timeout), url),
            check=False,
            timeout=timeout + 5,
        )
        return result.returncode == 0, (result.stdout or result.stderr).strip()

    def vip(self, prefix: str) -> VipConfig:
        return next(v for v in self.vips if v.prefix == prefix)
