"""Watch a router's kernel FIB while something happens, to prove that nothing left it.

    with FibWatch(router_ns, {"203.0.113.10/32": {"198.51.100.11"}}) as watch:
        ...  # the thing that must not move a route
    assert watch.samples > 0 and not watch.wrong and not watch.changes

Two views, because a poll can miss what lasted less than its interval: every `interval` (10 ms) each
prefix's next hops are read (long-lived `ip -batch` processes, 0.1 ms a query, so the interval holds
under load where spawning `ip` per read does not), and `ip monitor route` records every change in
between.
"""

from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from collections.abc import Callable
from types import TracebackType

from lab.router import parse_nexthops


class FibReader:
    """Next hops of a prefix in `netns`'s kernel FIB, read through long-lived `ip -batch` processes (one per
    address family): 0.1 ms a read, where spawning `ip` costs milliseconds (bench/failover.py times with it)."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self._readers: dict[int, subprocess.Popen[str]] = {}

    def _batch(self, version: int) -> subprocess.Popen[str]:
        if version not in self._readers:
            self._readers[version] = subprocess.Popen(
                ["ip", "-n", self.netns, f"-{version}", "-j", "-batch", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        return self._readers[version]

    def nexthops(self, prefix: str) -> list[str]:
        reader = self._batch(ipaddress.ip_network(prefix).version)
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write(f"route show exact {prefix}\n")
        reader.stdin.flush()
        return parse_nexthops(reader.stdout.readline())

    def close(self) -> None:
        for reader in self._readers.values():
            if reader.stdin is not None:
                reader.stdin.close()
            reader.wait(timeout=5)
        self._readers.clear()


class FibWatch:
    """Polls `expected` prefixes' next hops in `netns`; `wrong` and `changes` hold what differed."""

    def __init__(self, netns: str, expected: dict[str, set[str]], interval: float = 0.01) -> None:
        self.netns = netns
        self.expected = expected
        self.interval = interval
        self.samples = 0
        self.gaps: list[float] = []  # seconds between two complete samples
        self.wrong: list[tuple[float, str, list[str]]] = []  # (seconds since start, prefix, next hops seen)
        self.changes: list[str] = []  # `ip monitor route` lines about the expected prefixes
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._reader = FibReader(netns)
        self._monitor: subprocess.Popen[str] | None = None

    def nexthops(self, prefix: str) -> list[str]:
        return self._reader.nexthops(prefix)

    def _poll(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            for prefix, hops in self.expected.items():
                seen = self.nexthops(prefix)
                if set(seen) != hops:
                    self.wrong.append((time.monotonic() - self.started, prefix, seen))
            now = time.monotonic()
            self.samples += 1
            self.gaps.append(now - last)
            last = now
            self._stop.wait(self.interval)

    def gap(self, fraction: float) -> float:
        """The `fraction` quantile of the time between two samples (1.0: the longest)."""
        ordered = sorted(self.gaps) or [0.0]
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def __enter__(self) -> FibWatch:
        self._monitor = subprocess.Popen(
            ["ip", "-n", self.netns, "monitor", "route"], stdout=subprocess.PIPE, text=True
        )
        for prefix in self.expected:  # start the readers, and check the starting point itself
            self.nexthops(prefix)
        time.sleep(0.1)  # `ip monitor` has subscribed before anything happens
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        time.sleep(0.3)  # a late withdraw still shows
        self._stop.set()
        self._thread.join(timeout=5)
        self.seconds = time.monotonic() - self.started
        self._reader.close()
        if self._monitor is not None:
            self._monitor.terminate()
            out, _ = self._monitor.communicate(timeout=5)
            self.changes = self._about_expected(out.splitlines())

    def _about_expected(self, lines: list[str]) -> list[str]:
        """The monitor's lines about the watched prefixes (with their `nexthop` continuation lines): a
        link-local route the kernel adds or ages out on its own is not something the watched thing did."""
        names = set()
        for prefix in self.expected:
            network = ipaddress.ip_network(prefix)
            names.add(str(network))
            if network.prefixlen == network.max_prefixlen:
                names.add(str(network.network_address))  # `ip monitor` prints a host route without its length
        kept: list[str] = []
        keeping = False
        for line in lines:
            if not line.strip():
                continue
            if line[0].isspace():
                if keeping:
                    kept.append(line)
                continue
            words = line.split()
            first = words[1] if words[0] == "Deleted" and len(words) > 1 else words[0]
            keeping = first in names
            if keeping:
                kept.append(line)
        return kept


class FibTimeline:
    """Every change of the next hops of `prefixes` in `netns`'s FIB, with the wall-clock time it was seen
    (polled every `interval`, 2 ms, through FibReader), so a benchmark can ask when the FIB first matched
    something after a fault: `first(predicate, after)`. Runs in the background from `start` to `stop`.
    """

    def __init__(self, netns: str, prefixes: list[str], interval: float = 0.002) -> None:
        self.prefixes = prefixes
        self.interval = interval
        self.changes: list[tuple[float, dict[str, frozenset[str]]]] = []
        self._reader = FibReader(netns)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._poll, name="fibtimeline", daemon=True)

    def _sample(self) -> dict[str, frozenset[str]]:
        return {prefix: frozenset(self._reader.nexthops(prefix)) for prefix in self.prefixes}

    def _poll(self) -> None:
        while not self._stop.is_set():
            now, hops = time.time(), self._sample()
            with self._lock:
                if not self.changes or self.changes[-1][1] != hops:
                    self.changes.append((now, hops))
            self._stop.wait(self.interval)

    def start(self) -> FibTimeline:
        self.changes.append((time.time(), self._sample()))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._reader.close()

    def now(self) -> dict[str, frozenset[str]]:
        with self._lock:
            return self.changes[-1][1]

    def first(self, predicate: Callable[[dict[str, frozenset[str]]], bool], after: float) -> float | None:
        """The wall-clock time the FIB first matched `predicate` at or after `after` (None: not yet). The
        state current at `after` counts from `after` itself."""
        with self._lock:
            changes = list(self.changes)
        for index, (when, hops) in enumerate(changes):
            ends = changes[index + 1][0] if index + 1 < len(changes) else float("inf")
            if ends > after and predicate(hops):
                return max(when, after)
        return None

    def wait(
        self, predicate: Callable[[dict[str, frozenset[str]]], bool], after: float, timeout: float, what: str
    ) -> float:
        """`first(predicate, after)`, waited for at most `timeout` seconds from now."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.first(predicate, after)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not seen within {timeout:.0f}s (FIB now: {self.now()})")
            time.sleep(0.01)

    def count_after(self, after: float) -> int:
        """How many FIB changes were seen after `after`."""
        with self._lock:
            return sum(1 for when, _ in self.changes[1:] if when > after)

    def fewest(self, prefix: str, after: float) -> int:
        """The fewest next hops `prefix` had from `after` on."""
        with self._lock:
            changes = list(self.changes)
        counts = [
            len(hops[prefix])
            for index, (when, hops) in enumerate(changes)
            if (changes[index + 1][0] if index + 1 < len(changes) else float("inf")) > after
        ]
        return min(counts) if counts else 0
