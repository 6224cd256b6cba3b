"""Fleet fixtures: booted systemd nodes deployed by `pyinfra inventories/lab.py deploy.py`, one fleet per module.

A fleet takes seconds to boot but its deploy takes longer, so each module shares one; tests that break a
node put it back (and wait for its routes) before they end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.fleet import REPO, Fleet, fleet_requirements_missing
from tests.conftest import record_figure, unique_prefix


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
    """Boot a fleet and run the first deploy on it; a failed deploy fails every test with pyinfra's output."""
    started = time.monotonic()
    fleet = Fleet(workdir, prefix=unique_prefix("of"), **kwargs)  # type: ignore[arg-type]
    fleet.up()
    record_figure("fleet: boot (network, router, copies, systemd)", time.monotonic() - started)
    try:
        result = fleet.deploy()
        record_figure("fleet: first deploy (3 nodes)", result.seconds)
        if not result.ok:
            pytest.fail(f"first deploy failed: {result.summary()}\n{result.output[-4000:]}")
        record_figure("fleet: deploy done -> all ECMP routes", fleet.wait_routes(timeout=60))
    except BaseException:
        fleet.down()
        raise
    return fleet


@pytest.fixture(scope="module")
def fleet(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("fleet"))
    yield fleet
    fleet.down()
    assert not fleet.leftovers, f"processes outlived the fleet: {fleet.leftovers}"
