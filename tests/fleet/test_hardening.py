"""Hardening on booted nodes (issue 13), through the operator's deploy: sockets and keys with the modes the
config says whatever the node's history, systemd's own score of every unit ober installs (and the units still
serve), and a presigned URL whose credentials never reach the node's journal.

The nodes boot Debian 12 (HAProxy 2.6, systemd 252) and, in a second fleet, Debian 13 (HAProxy 3.0, systemd
257), with HAProxy installed and started by the distribution (its own haproxy.cfg made
/run/haproxy/admin.sock 660 root:haproxy at that first start): the history issue 13 found on real nodes.
One fleet of two nodes per release; a test that changes a node puts it back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from lab.fleet import VIPS, Fleet
from lab.nspawn import NspawnNode
from lab.procs import wait_for
from tests.conftest import record_outcome
from tests.fleet.conftest import FibWatcher, start_fleet, stop_fleet

pytestmark = pytest.mark.fleet

# what haproxy.cfg, tasks/tls.py and the staged configs say (ober_deploy.haproxy.stats_sockets, ...)
MODES = {
    "/run/haproxy/admin.sock": "600 root root socket",
    "/run/haproxy/ober.sock": "660 root ober socket",
    "/etc/haproxy/certs": "700 root root directory",
    "/etc/haproxy/certs/s3.lab.example.pem": "600 root root regular file",
    "/etc/ober/exabgp.conf": "640 root ober regular file",
}
# "OK" on systemd's scale is below 5.0 (MEDIUM from 5.0, EXPOSED from 7.0, UNSAFE from 9.0)
LIMITS = {"exabgp.service": 2.5, "ober-vips.service": 2.5, "haproxy.service": 4.0}
BUCKET = "hardening-bucket"


RELEASES = {"debian12": "bookworm", "debian13": "trixie"}


@pytest.fixture(scope="module", params=list(RELEASES))
def fleet(request: pytest.FixtureRequest, fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    suite = RELEASES[request.param]
    fleet = start_fleet(tmp_path_factory.mktemp(f"hardening-{request.param}"), nodes=2, suite=suite)
    yield fleet
    stop_fleet(fleet)


def release(fleet: Fleet) -> str:
    return f"Debian {13 if fleet.suite == 'trixie' else 12}"


def first(fleet: Fleet) -> NspawnNode:
    return fleet.nodes[next(iter(fleet.nodes))]


def modes(node: NspawnNode) -> dict[str, str]:
    out = node.ssh("stat", "-c", "'%n %a %U %G %F'", *MODES).stdout
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}


def haproxy_pids(node: NspawnNode) -> str:
    return node.ssh("pgrep", "-d,", "-x", "haproxy").stdout.strip()


def test_sockets_and_keys_have_the_configured_modes_after_the_distributions_first_start(fleet: Fleet) -> None:
    first_deploy = fleet.deploys[0].output
    # the history was there, and the deploy saw it live: Debian's config had made admin.sock 660
    assert re.search(r"/run/haproxy/admin\.sock: mode 600 root:root \(live: 660 root:haproxy\)", first_deploy)
    for node in fleet.nodes.values():
        assert modes(node) == MODES, node.name


def test_a_drifted_socket_mode_is_repaired_by_the_next_deploy_without_a_reload(fleet: Fleet) -> None:
    node = first(fleet)
    node.ssh("chmod", "666", "/run/haproxy/admin.sock", "/run/haproxy/ober.sock")
    node.ssh("chown", "root:haproxy", "/run/haproxy/admin.sock")
    pids = haproxy_pids(node)
    with FibWatcher(fleet) as watch:
        result = fleet.deploy()
    assert result.ok, result.output[-3000:]
    assert modes(node) == MODES
    assert haproxy_pids(node) == pids, "HAProxy was reloaded or restarted to fix a socket's mode"
    assert not watch.missing(list(fleet.nodes)), watch.missing(list(fleet.nodes))[:5]
    assert result.changed.get(node.name, 0) >= 1 and not result.changed.get(next(reversed(fleet.nodes)), 0), (
        result.summary()
    )


def test_every_unit_ober_installs_scores_ok_and_still_serves(fleet: Fleet) -> None:
    node = first(fleet)
    for unit, limit in LIMITS.items():
        report = node.ssh("systemd-analyze", "security", "--no-pager", unit).stdout
        match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d) (\w+)", report)
        assert match, report[-2000:]
        record_outcome(
            f"systemd-analyze security ({release(fleet)} node)", f"{unit}: {match.group(1)} {match.group(2)}"
        )
        assert float(match.group(1)) <= limit, report
    for unit in LIMITS:
        assert node.ssh("systemctl", "is-active", unit, check=False).stdout.strip() == "active", unit
    # the sandboxed units do their jobs: VIPs on the node, TLS on 443 of both VIPs, routes at the router
    fleet.wait_routes(timeout=10)
    for vip in VIPS:
        code = fleet.client_run(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(fleet.ca_certificate),
            "-g", fleet.s3_endpoint(vip) + "/", timeout=30,
        )  # fmt: skip
        assert code.stdout == "200", code.stderr
    assert node.ssh("/opt/ober/venv/bin/ober", "status", check=False).returncode == 0


def test_a_presigned_urls_credentials_never_reach_the_journal(fleet: Fleet) -> None:
    """A URL presigned by boto3 (SigV4) through the VIP to real RGW: the node that served it logged method,
    path, status, bytes and timings, and neither the signature nor the credential (access key id)."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 2))
    url = fleet.s3("presign", "--bucket", BUCKET, "--key", "secret-test", endpoint=fleet.s3_endpoint())["url"]
    signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url)
    assert signature, url
    result = fleet.client_run(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(fleet.ca_certificate), url, timeout=30
    )  # fmt: skip
    assert result.stdout in ("200", "404"), result.stdout + result.stderr  # RGW answered it
    lines: list[str] = []
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        for node in fleet.nodes.values():
            journal = node.ssh(
                "journalctl", "--utc", "--no-pager", "-o", "cat", "-t", "haproxy", "--since", f"'{started}'"
            ).stdout
            assert signature.group(1) not in journal, f"{node.name}: the signature is in the journal"
            assert fleet.rgw.access_key not in journal, f"{node.name}: the access key id is in the journal"
            lines += [line for line in journal.splitlines() if f"/{BUCKET}/secret-test" in line]
        time.sleep(0.5)
    assert len(lines) == 1, lines
    record_outcome(f"HAProxy's journal line of a presigned GET ({release(fleet)} node)", lines[0])
    assert f'"GET /{BUCKET}/secret-test?' in lines[0] and "X-Amz-Signature=***" in lines[0], lines[0]
    assert f" {result.stdout} " in lines[0], lines[0]


def test_a_reboot_of_the_sandboxed_units_drains_first_and_no_request_fails(fleet: Fleet) -> None:
    """The whole life of the sandboxed units once more: the stop path (`ober drain` in exabgp.service's sandbox)
    during a reboot, under a client loop; then ober-vips, HAProxy and ExaBGP start at boot and serve."""
    node = first(fleet)
    client = fleet.start_client(VIPS[0], duration=14.0)
    time.sleep(2.0)
    boots = node.boots
    node.ssh("systemctl", "reboot", check=False)
    wait_for(lambda: node.boots > boots, timeout=90, what=f"{node.name} to reboot")
    result = fleet.client_result(client)
    node.wait_running(timeout=90)
    fleet.wait_routes(timeout=60)
    stop = node.ssh("journalctl", "-b", "-1", "-u", "exabgp.service", "-o", "cat", "--no-pager", check=False).stdout
    assert result.failed == 0, f"{result.failed} of {result.ok + result.failed} failed: {result.errors}\n{stop[-3000:]}"
    assert "drain: every VIP withdrawn (ExaBGP acknowledged)" in stop, stop[-3000:]
    for unit in LIMITS:
        assert node.ssh("systemctl", "is-active", unit, check=False).stdout.strip() == "active", unit
