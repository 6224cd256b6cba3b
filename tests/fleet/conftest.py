"""Fleet fixtures: booted systemd nodes deployed by `pyinfra inventories/lab.py deploy.py`, one fleet per module.

A fleet takes seconds to boot but its deploy takes longer, so each module shares one; tests that break a
node put it back (and wait for its routes) before they end.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from lab.fleet import REPO, VIPS, Fleet, fleet_requirements_missing
from lab.nspawn import NspawnNode
from tests.conftest import record_figure, unique_prefix

EXABGP = "exabgp.service"
HAPROXY = "haproxy.service"


@pytest.fixture(scope="session")
def nodes_ok() -> None:
    """Booted nodes can run here (root, namespaces, systemd-nspawn, debootstrap, BIRD)."""
    reason = fleet_requirements_missing()
    if reason:
        pytest.skip(f"fleet test skipped: {reason}")


@pytest.fixture(scope="session")
def fleet_ok(nodes_ok: None) -> None:
    """...and the production deploy is there to deploy them."""
    if not (REPO / "deploy.py").exists():
        pytest.skip("fleet test skipped: deploy.py (the production deploy) is not in the repository")


def start_fleet(workdir: Path, **kwargs: object) -> Fleet:
    """Boot a fleet and run the first deploy on it; a failed deploy fails every test with pyinfra's output.
    Each phase's time goes to the summary (images are built once per machine, so CI's first fleet pays)."""
    started = time.monotonic()
    fleet = Fleet(workdir, prefix=unique_prefix("of"), **kwargs)  # type: ignore[arg-type]
    fleet.up()
    record_figure("fleet: boot (images, network, router, RGW, copies, systemd)", time.monotonic() - started)
    for phase, seconds in fleet.timings.items():
        record_figure(f"fleet phase: {phase} (Debian {fleet.suite})", seconds)
    try:
        result = fleet.deploy()
        record_figure(f"fleet: first deploy ({len(fleet.nodes)} nodes, Debian {fleet.suite})", result.seconds)
        if not result.ok:
            pytest.fail(f"first deploy failed: {result.summary()}\n{result.output[-4000:]}")
        record_figure("fleet: deploy done -> all ECMP routes", fleet.wait_routes(timeout=60))
    except BaseException:
        fleet.down()
        raise
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    fleet.down()
    record_figure(f"fleet phase: down (Debian {fleet.suite})", fleet.timings["down"])
    assert not fleet.leftovers, f"processes outlived the fleet: {fleet.leftovers}"


@pytest.fixture(scope="module")
def fleet(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("fleet"))
    yield fleet
    stop_fleet(fleet)


def fresh_clone(dest: Path) -> Path:
    """`git clone` of this repository into `dest`: no .cache, no .venv, what an operator starts from.

    Changes of the working tree not committed yet (tracked and untracked files, not ignored ones) are
    applied on top, so a developer's run tests what they are about to commit; on CI there are none.
    """
    git = ["git", "-c", "advice.detachedHead=false"]
    subprocess.run([*git, "clone", "--quiet", str(REPO), str(dest)], check=True, timeout=120)
    diff = subprocess.run([*git, "-C", str(REPO), "diff", "HEAD", "--binary"], capture_output=True, check=True)
    if diff.stdout:
        subprocess.run([*git, "-C", str(dest), "apply", "--allow-empty"], input=diff.stdout, check=True)
    untracked = subprocess.run(
        [*git, "-C", str(REPO), "ls-files", "--others", "--exclude-standard", "-z"], capture_output=True, check=True
    )
    for name in filter(None, untracked.stdout.decode().split("\0")):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
    return dest


class FibWatcher:
    """Polls the router's FIB every 10 ms while in use: the next hops of every VIP, with the time seen.

    `changes()` lists each change of the next-hop sets; `missing(node_ips)` the samples where any of
    those next hops was absent - what a node that must keep its routes must never show.
    """

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.samples: list[tuple[float, dict[str, frozenset[str]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), {vip: frozenset(self.fleet.nexthops(vip)) for vip in VIPS}))
            time.sleep(0.01)

    def __enter__(self) -> FibWatcher:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def changes(self) -> list[tuple[float, dict[str, list[str]]]]:
        seen: list[tuple[float, dict[str, list[str]]]] = []
        previous = None
        for when, hops in self.samples:
            if hops != previous:
                seen.append((when, {vip: sorted(h) for vip, h in hops.items()}))
                previous = hops
        return seen

    def missing(self, nodes: list[str]) -> list[str]:
        """Samples where a next hop of `nodes` was not in the FIB, as readable lines."""
        lines = []
        for when, hops in self.samples:
            for vip in VIPS:
                absent = self.fleet.node_ips(vip, nodes) - hops[vip]
                if absent:
                    lines.append(f"{when:.3f} {vip}: {sorted(absent)} missing")
        return lines

    def fewest(self, vip: str) -> int:
        """The fewest next hops `vip` had in any sample."""
        return min(len(hops[vip]) for _, hops in self.samples)


# ---- what tests look at on a node


def others(fleet: Fleet, node: NspawnNode) -> list[str]:
    return [name for name in fleet.nodes if name != node.name]


def wait_node_gone(fleet: Fleet, node: NspawnNode, timeout: float) -> float:
    """Seconds until every VIP's next hops at the router are those of the other nodes only."""
    started = time.monotonic()
    for vip in VIPS:
        fleet.wait_nexthops(vip, fleet.node_ips(vip, others(fleet, node)), timeout=timeout)
    return time.monotonic() - started
