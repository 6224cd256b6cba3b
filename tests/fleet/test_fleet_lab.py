"""The fleet lab itself, before any deploy: nodes that behave like separate machines, and a clean teardown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.fleet import Fleet
from lab.procs import run, wait_for
from tests.conftest import record_figure, unique_prefix

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def bare_fleet(nodes_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path_factory.mktemp("bare"), prefix=unique_prefix("of"), nodes=2).up()
    record_figure("fleet: boot 2 bare nodes", sum(v for k, v in fleet.timings.items() if k != "down"))
    yield fleet
    fleet.down()


def test_nodes_boot_systemd_answer_ssh_and_keep_their_addresses(bare_fleet: Fleet) -> None:
    for name, node in bare_fleet.nodes.items():
        state = node.ssh("systemctl", "is-system-running").stdout.strip()
        assert state in ("running", "degraded"), f"{name}: {state}"
        assert node.ssh("hostname").stdout.strip() == name
        addresses = node.ssh("ip", "-br", "addr", "show", "eth0").stdout
        assert node.host.ipv4 in addresses and node.host.ipv6 in addresses, addresses


def test_nodes_reach_the_sites_rgw_gateways_by_their_names(bare_fleet: Fleet) -> None:
    """The names of `ober_backends` resolve on the nodes (the lab's /etc/hosts stands for the site's DNS)
    and each gateway answers there as radosgw does: an anonymous `GET /` is an empty bucket listing."""
    assert bare_fleet.rgw.hostlist == "rgw[01-02].lab.example:7480"
    for name, node in bare_fleet.nodes.items():
        for gateway in bare_fleet.rgw.gateways:
            answer = node.ssh("curl", "-sS", "-f", f"http://{gateway.fqdn}:7480/").stdout
            assert "<ListAllMyBucketsResult" in answer, f"{name}: {gateway.fqdn} answered {answer[:300]}"


def test_each_node_has_its_own_systemd_a_unit_killed_on_one_survives_on_the_other(bare_fleet: Fleet) -> None:
    one, two = bare_fleet.nodes.values()
    unit = "systemd-journald.service"  # on every node, restarted by its systemd when killed
    survivor = two.main_pid(unit)
    victim = one.main_pid(unit)
    one.ssh("systemctl", "kill", "-s", "KILL", unit)
    assert two.main_pid(unit) == survivor
    assert one.main_pid(unit) != victim
    assert one.ssh("cat", "/etc/machine-id").stdout != two.ssh("cat", "/etc/machine-id").stdout


def test_power_cut_silences_a_node_and_restore_brings_it_back(bare_fleet: Fleet) -> None:
    node = next(iter(bare_fleet.nodes.values()))
    node.power_cut()
    try:
        assert node.ssh("true", check=False, timeout=5).returncode != 0, "a powered-off node answered SSH"
    finally:
        node.power_restore()
    assert node.ssh("true", check=False, timeout=10).returncode == 0


def test_a_node_that_reboots_comes_back_as_a_machine_does(bare_fleet: Fleet) -> None:
    """`systemctl reboot` inside a node ends its systemd-nspawn (exit 133); the lab boots it again."""
    node = list(bare_fleet.nodes.values())[-1]
    boot_id = node.ssh("cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
    boots = node.boots
    started = time.monotonic()
    node.ssh("systemctl", "reboot", check=False)  # ssh may be cut as sshd stops
    wait_for(lambda: node.boots > boots, timeout=60, what=f"{node.name} to be booted again")
    node.wait_running(timeout=90)
    record_figure("fleet: systemctl reboot -> node running again", time.monotonic() - started)
    assert node.ssh("cat", "/proc/sys/kernel/random/boot_id").stdout.strip() != boot_id
    previous = node.ssh("journalctl", "-b", "-1", "-o", "cat", "--no-pager", check=False).stdout
    assert "Reached target" in previous and "reboot" in previous.lower(), "the journal keeps the last boot"


def test_teardown_leaves_no_namespace_cgroup_process_or_copy(nodes_ok: None, tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "gone", prefix=unique_prefix("of"), nodes=1).up()
    node = next(iter(fleet.nodes.values()))
    pid = fleet.supervisor.procs[node.proc_name].pid
    fleet.down()
    assert not fleet.leftovers, fleet.leftovers
    namespaces = run("ip", "netns", "list").stdout
    assert fleet.prefix not in namespaces, namespaces
    assert not Path(f"/proc/{pid}").exists(), "systemd-nspawn outlived the fleet"
    assert not node.root.exists(), "the node's rootfs copy was not removed"
    assert node.cgroup() is None, "the node's cgroup was not removed"
    assert not any(fleet.workdir.glob("rgw-*-srv")), "the RGW store of the lab was not removed"
