"""End to end on booted systemd nodes: what the operator's `pyinfra inventories/lab.py deploy.py` produces,
seen where a user sees it (the router's FIB, requests through the VIPs), under the failures production meets.

Tests share one fleet (see conftest); each test that breaks a node puts it back before it ends.
"""

from __future__ import annotations

import time

import pytest

from lab.fibwatch import FibWatch
from lab.fleet import VIPS, DeployResult, Fleet, health_process
from lab.nspawn import NspawnNode
from lab.procs import wait_for
from tests.conftest import record_figure
from tests.fleet.conftest import EXABGP, HAPROXY, others, wait_node_gone

pytestmark = pytest.mark.fleet

HOLD_TIME = 3.0  # the router's hold time (lab.router): the protocol minimum


def first_node(fleet: Fleet) -> NspawnNode:
    return fleet.nodes[next(iter(fleet.nodes))]


def test_deploy_succeeds_on_every_node_and_a_second_deploy_changes_nothing(fleet: Fleet) -> None:
    first = fleet.deploys[0]
    assert first.ok, first.output[-3000:]
    assert set(first.changed) == set(fleet.nodes), f"first deploy changed nothing on some nodes: {first.summary()}"
    second = fleet.deploy()
    record_figure("fleet: second deploy (no change expected)", second.seconds)
    assert second.ok, second.output[-3000:]
    assert set(second.unchanged) == set(fleet.nodes), second.summary()
    assert not any(second.changed.values()), f"second deploy changed operations: {second.summary()}"


def test_every_vip_has_one_next_hop_per_node_and_requests_reach_every_node(fleet: Fleet) -> None:
    """Which node forwarded a request is read from RGW's access log (the request's peer address is the
    node's HAProxy): RGW answers the same whichever node forwarded it."""
    for vip in VIPS:
        assert fleet.nexthops(vip) == fleet.node_ips(vip), vip
        marks = fleet.rgw_marks()
        for _ in range(40):  # new connections, new source ports: every node's share of the hash is hit
            ok, body = fleet.request(vip)
            assert ok, f"request through {vip} failed: {body}"
            assert "ListAllMyBucketsResult" in body, f"not RGW's answer through {vip}: {body[:200]}"
        served = fleet.forwarded_since(marks, vip)
        assert all(served.values()) and sum(served.values()) == 40, f"{vip}: requests per node {served}"


def test_haproxy_killed_its_next_hops_leave_and_return_after_systemd_restarts_it(fleet: Fleet) -> None:
    node = first_node(fleet)
    before = node.main_pid(HAPROXY)

    def journal() -> str:
        return node.ssh("journalctl", "-u", EXABGP, "--no-pager", "-o", "cat", check=False).stdout

    # the event path works inside the unit's sandbox (ProtectProc=invisible, seccomp): the stats socket names
    # the master, and a pidfd on it is allowed
    wait_for(lambda: f"watching HAProxy's master (pid {before})" in journal(), timeout=10, what="the watch")
    started = time.monotonic()
    node.ssh("systemctl", "kill", "-s", "KILL", HAPROXY)
    record_figure("fleet: HAProxy SIGKILL -> next hops gone", wait_node_gone(fleet, node, timeout=10))
    assert f"HAProxy's master (pid {before}) exited" in journal(), journal()[-3000:]
    for vip in VIPS:
        ok, body = fleet.request(vip)
        assert ok, f"{vip} while {node.name} is down: {body}"
    record_figure(
        "fleet: HAProxy SIGKILL -> next hops back", fleet.wait_routes(timeout=30) + time.monotonic() - started
    )
    after = node.main_pid(HAPROXY)
    assert after and after != before, f"systemd did not restart HAProxy on {node.name} ({before} -> {after})"


def test_hung_health_program_watchdog_restarts_exabgp_and_routes_leave_meanwhile(fleet: Fleet) -> None:
    node = first_node(fleet)
    exabgp_before = node.main_pid(EXABGP)
    hung = health_process(node)
    started = time.monotonic()
    node.ssh("kill", "-STOP", str(hung))
    try:
        record_figure("fleet: health SIGSTOP -> next hops gone", wait_node_gone(fleet, node, timeout=60))
        record_figure(
            "fleet: health SIGSTOP -> next hops back", fleet.wait_routes(timeout=60) + time.monotonic() - started
        )
    finally:
        node.ssh("kill", "-CONT", str(hung), check=False)  # no-op once systemd replaced it
    exabgp_after = node.main_pid(EXABGP)
    assert exabgp_after and exabgp_after != exabgp_before, "ExaBGP was not restarted by its watchdog"
    assert health_process(node) != hung
    journal = node.ssh("journalctl", "-u", EXABGP, "--no-pager", "-o", "cat", check=False).stdout
    assert "watchdog timeout" in journal.lower(), f"no watchdog timeout in {EXABGP}'s journal:\n{journal[-2000:]}"


def test_stopping_obers_units_drains_first_no_request_fails(fleet: Fleet) -> None:
    node = first_node(fleet)
    marks = fleet.rgw_marks()
    client = fleet.start_client(VIPS[0], duration=6.0)
    time.sleep(1.5)
    served = fleet.forwarded_since(marks, VIPS[0])[node.name]
    started = time.monotonic()
    node.ssh("systemctl", "stop", EXABGP, HAPROXY, timeout=60)
    record_figure("fleet: systemctl stop (drain) duration", time.monotonic() - started)
    result = fleet.client_result(client)
    assert node.main_pid(HAPROXY) == 0 and node.main_pid(EXABGP) == 0
    for vip in VIPS:
        assert fleet.nexthops(vip) == fleet.node_ips(vip, others(fleet, node)), vip
    assert served, f"{node.name} served nothing before the stop"
    assert result.failed == 0, f"{result.failed} of {result.ok + result.failed} requests failed: {result.errors}"
    node.ssh("systemctl", "start", HAPROXY, EXABGP)
    fleet.wait_routes(timeout=30)


# the clients allowed by the synced whitelist: a Slurm hostlist of the lab's client hosts, resolved on the
# controller through the site's DNS (lab/fleet.py); the router namespace, a client too, is outside it
WHITELIST = "client[01-02].lab.example"


def sync_whitelist(fleet: Fleet, *data: str) -> DeployResult:
    """The operator's `ober sync`: `pyinfra inventories/lab.py tasks/whitelists.py [--data ...]`."""
    return fleet.deploy(*data, deploy_file="tasks/whitelists.py")


def test_whitelist_sync_reloads_haproxy_and_withdraws_no_route(fleet: Fleet) -> None:
    """`pyinfra inventories/lab.py tasks/whitelists.py --data ober_whitelist_frontend=<hostlist>` on a
    serving fleet: every node's ACL file changes and HAProxy reloads (same master, new workers), while the
    router's FIB, watched every 10 ms and by `ip monitor`, never loses or gains a next hop. Then the ACL
    is in force: a listed client is served through both VIPs, the router namespace (not listed) refused."""
    masters = {name: node.main_pid(HAPROXY) for name, node in fleet.nodes.items()}
    workers = {name: set(node.children(masters[name])) for name, node in fleet.nodes.items()}
    exabgp = {name: node.main_pid(EXABGP) for name, node in fleet.nodes.items()}
    with FibWatch(fleet.router_ns, {vip: fleet.node_ips(vip) for vip in VIPS}) as watch:  # every 10 ms
        result = sync_whitelist(fleet, "--data", f"ober_whitelist_frontend={WHITELIST}")
        time.sleep(1.0)  # a withdrawal caused by the reload would show within the health interval
    record_figure("fleet: whitelist sync (tasks/whitelists.py)", result.seconds)
    assert result.ok, result.output[-3000:]
    assert set(result.changed) == set(fleet.nodes), f"the sync did not change every node: {result.summary()}"
    try:
        for name, node in fleet.nodes.items():
            assert node.main_pid(HAPROXY) == masters[name], f"{name}: HAProxy was restarted, not reloaded"
            assert set(node.children(masters[name])) != workers[name], f"{name}: HAProxy workers unchanged (no reload)"
            assert node.main_pid(EXABGP) == exabgp[name], f"{name}: ExaBGP was restarted by a whitelist sync"
        assert watch.samples > 0 and not watch.wrong and not watch.changes, (
            f"next hops changed during the sync: {watch.wrong[:10]} {watch.changes[:10]}"
        )
        for vip in VIPS:
            ok, body = fleet.request_from("client01.lab.example", vip)
            assert ok and "ListAllMyBucketsResult" in body, f"a listed client was not served through {vip}: {body}"
            ok, body = fleet.request(vip)
            assert not ok, f"the router namespace, outside the whitelist, was served through {vip}: {body[:200]}"
        again = sync_whitelist(fleet, "--data", f"ober_whitelist_frontend={WHITELIST}")
        assert again.ok and not any(again.changed.values()), f"an unchanged whitelist changed: {again.summary()}"
    finally:  # the inventory's whitelist (none) again, by the same sync, so later tests see the fleet as deployed
        restored = sync_whitelist(fleet)
    assert restored.ok and set(restored.changed) == set(fleet.nodes), restored.summary()
    for vip in VIPS:
        ok, body = fleet.request(vip)
        assert ok, f"{vip} refused after the whitelist was lifted: {body}"


def test_node_powered_off_router_drops_it_by_hold_timer(fleet: Fleet) -> None:
    node = fleet.nodes[list(fleet.nodes)[-1]]
    node.power_cut()
    try:
        record_figure(
            "fleet: power cut -> next hops gone (hold timer)", wait_node_gone(fleet, node, timeout=HOLD_TIME + 2)
        )
    finally:
        node.power_restore()
    protocol = f"{node.name}_v4"
    details = fleet.router.birdc("show", "protocols", "all", protocol)  # type: ignore[union-attr]
    assert "Hold timer expired" in details, details
    record_figure("fleet: power restored -> next hops back", fleet.wait_routes(timeout=60))


def test_deployed_files_pass_independent_checks_on_every_node(fleet: Fleet) -> None:
    """What the deploy left on each node, checked with the node's own tools, not with the deploy's."""
    checks = {
        "haproxy -c -q -f /etc/haproxy/haproxy.cfg": "",
        "/opt/ober/venv/bin/exabgp validate /etc/ober/exabgp.conf >/dev/null": "",
        "/opt/ober/venv/bin/ober-health --check --config /etc/ober/health.toml >/dev/null": "",
        "stat -c %a /etc/haproxy/certs/s3.lab.example.pem": "600",
        "stat -c %U:%G:%a /etc/ober/exabgp.conf": "root:ober:640",
        "systemctl is-enabled exabgp.service haproxy.service ober-vips.service | sort -u": "enabled",
        "ps -o user= -p $(systemctl show -p MainPID --value exabgp.service)": "ober",
        "grep -c graceful-restart /etc/ober/exabgp.conf || true": "0",
        "/opt/ober/venv/bin/ober status --json >/dev/null; echo $?": "0",
    }
    for name, node in fleet.nodes.items():
        for command, expected in checks.items():
            result = node.ssh("sh", "-c", f"'{command}'", check=False)
            assert result.returncode == 0, f"{name}: `{command}` failed: {result.stderr or result.stdout}"
            assert result.stdout.strip() == expected, f"{name}: `{command}` gave {result.stdout.strip()!r}"
    # TLS on the VIPs: Mozilla intermediate (no TLS 1.1), ALPN h2 offered
    host = VIPS[0].split("/")[0]
    ca = str(fleet.ca_certificate)  # the certificate is the lab CA's: verified, not -k
    h2 = fleet_curl(fleet, "--cacert", ca, "--http2", "-o", "/dev/null", "-w", "%{http_version}", f"https://{host}/")
    assert h2 == "2", f"HTTP version over TLS through {host}: {h2!r}"
    old_tls = fleet_curl(
        fleet, "--cacert", ca, "--tlsv1.1", "--tls-max", "1.1", "-o", "/dev/null", f"https://{host}/", ok=False
    )
    assert old_tls is None, "TLS 1.1 was accepted"


def fleet_curl(fleet: Fleet, *args: str, ok: bool = True) -> str | None:
    from lab.procs import netns_exec, run

    result = run(*netns_exec(fleet.router_ns, "curl", "-sS", "--max-time", "3", *args), check=False, timeout=10)
    if result.returncode != 0:
        assert not ok, f"curl {' '.join(args)} failed: {result.stderr}"
        return None
    return result.stdout.strip()
