"""BFD on the deployed fleet: peers with `bfd: true` get FRR's bfdd on each node, and a node that stops
dead is dropped by the router in a fraction of the BGP hold time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lab.fleet import VIPS, Fleet
from tests.conftest import record_figure
from tests.fleet.conftest import start_fleet, stop_fleet

pytestmark = pytest.mark.fleet

HOLD_TIME = 3.0


@pytest.fixture(scope="module")
def bfd_fleet(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("bfd"), nodes=2, bfd=True)
    yield fleet
    stop_fleet(fleet)


def wait_bfd_up(fleet: Fleet, timeout: float = 30.0) -> None:
    assert fleet.router is not None
    deadline = time.monotonic() + timeout
    sessions = ""
    while time.monotonic() < deadline:
        sessions = fleet.router.birdc("show", "bfd", "sessions")  # type: ignore[attr-defined]
        if sum(" Up " in line for line in sessions.splitlines()) >= 2 * len(fleet.nodes):
            return
        time.sleep(0.2)
    raise AssertionError(f"BFD sessions not all up at the router:\n{sessions}")


def test_frozen_node_is_dropped_by_bfd_well_inside_the_hold_time(bfd_fleet: Fleet) -> None:
    wait_bfd_up(bfd_fleet)
    node = bfd_fleet.nodes[list(bfd_fleet.nodes)[-1]]
    others = [name for name in bfd_fleet.nodes if name != node.name]
    started = time.monotonic()
    node.power_cut(drop_link=False)  # frozen, carrier up: only BFD or the hold timer can tell
    try:
        bfd_fleet.wait_nexthops(VIPS[0], bfd_fleet.node_ips(VIPS[0], others), timeout=HOLD_TIME + 2)
        seconds = time.monotonic() - started
    finally:
        node.power_restore()
    record_figure("fleet: node frozen -> next hops gone (BFD 50 ms x 3)", seconds)
    assert seconds < HOLD_TIME / 2, f"{seconds:.2f}s: that is the hold timer's doing, not BFD's"
    details = bfd_fleet.router.birdc("show", "protocols", "all", f"{node.name}_v4")  # type: ignore[union-attr]
    assert "BFD session down" in details, details
    bfd_fleet.wait_routes(timeout=60)


def test_uninstall_removes_everything_ober_put_on_the_node(bfd_fleet: Fleet) -> None:
    node = bfd_fleet.nodes[next(iter(bfd_fleet.nodes))]
    others = [name for name in bfd_fleet.nodes if name != node.name]
    result = bfd_fleet.deploy("--limit", node.name, deploy_file="tasks/uninstall.py")
    assert result.ok, result.output[-3000:]
    for vip in VIPS:
        assert bfd_fleet.nexthops(vip) == bfd_fleet.node_ips(vip, others), f"{vip} still routed to {node.name}"
    leftovers = node.ssh(
        "sh",
        "-c",
        "'for p in /opt/ober /etc/ober /run/ober /etc/haproxy/certs /etc/systemd/system/exabgp.service"
        " /etc/systemd/system/ober-vips.service /etc/systemd/system/ober-bfdd.service /etc/frr/ober-bfdd.conf"
        " /etc/sysctl.d/60-ober.conf /etc/haproxy/ober-frontend.acl /etc/haproxy/haproxy.cfg.ober-new"
        " /usr/local/bin/ober;"  # a link: -L, as it dangles once /opt/ober is gone
        " do { [ -e $p ] || [ -L $p ]; } && echo $p; done; getent passwd ober; ip -o addr | grep -F 203.0.113.; true'",
    ).stdout.split()
    assert not leftovers, f"{node.name}: left behind by the uninstall: {leftovers}"
    # HAProxy is back on the distribution's own configuration (dpkg knows its checksum)
    conffile = node.ssh("dpkg-query", "-W", "-f='${Conffiles}'", "haproxy").stdout
    shipped = next(line.split()[1] for line in conffile.splitlines() if "/etc/haproxy/haproxy.cfg" in line)
    current = node.ssh("md5sum", "/etc/haproxy/haproxy.cfg").stdout.split()[0]
    assert current == shipped, "haproxy.cfg is not the distribution's after the uninstall"
    assert node.ssh("systemctl", "is-active", "haproxy.service", check=False).stdout.strip() == "active"
