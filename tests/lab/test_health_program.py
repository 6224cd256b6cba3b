"""`ober-health` as ExaBGP's API process, judged where it matters: the router's kernel FIB.

Each test breaks one thing on node 1 and checks that exactly the right next hops leave (and return),
while node 2 keeps serving.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

from lab.fastlab import FastLab
from lab.fibwatch import FibWatch
from lab.procs import run, wait_for
from ober_health.statefile import read_state
from tests.conftest import record_figure
from tests.lab.conftest import LabFactory

V4, WEB, V6 = "203.0.113.10/32", "203.0.113.20/32", "2001:db8:203::10/128"


def _first_and_rest(lab: FastLab) -> tuple[str, list[str]]:
    names = list(lab.nodes)
    return names[0], names[1:]


def _wait_without(lab: FastLab, node: str, prefixes: tuple[str, ...] = (V4, WEB, V6)) -> None:
    others = [n for n in lab.nodes if n != node]
    for prefix in prefixes:
        lab.wait_nexthops(prefix, lab.node_ips(prefix, others))


def _wait_all(lab: FastLab, prefixes: tuple[str, ...] = (V4, WEB, V6)) -> None:
    for prefix in prefixes:
        lab.wait_nexthops(prefix, lab.node_ips(prefix))


def test_nothing_is_announced_before_rise_good_checks(make_lab: LabFactory) -> None:
    lab = make_lab(nodes=1, health_overrides={"rise": 10})
    node = next(iter(lab.nodes.values()))
    state = read_state(node.state_file)
    vip = state["vips"][V4]
    # the state file is written after each loop: the announce came on loop >= rise, not before
    assert vip["state"] == "announced" and vip["announces"] == 1
    assert vip["since"] is not None, state
    announce_loop = state["loops"] - round((state["updated_at"] - vip["since"]) / state["interval"])
    assert announce_loop >= 10 - 1, state
    # and the router learnt it once: ExaBGP got one announce per VIP, no flood of repeats
    log = (lab.workdir / f"{node.name}-exabgp.log").read_text()
    assert log.count(f"{V4} announced") == 1, log


def test_hung_haproxy_is_withdrawn_and_returns(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    started = time.monotonic()
    lab.supervisor.signal_group(lab.nodes[node].proc("haproxy"), signal.SIGSTOP)  # master and worker
    try:
        _wait_without(lab, node)
        record_figure("HAProxy SIGSTOP -> node's next hops gone", time.monotonic() - started)
        state = read_state(lab.nodes[node].state_file)
        assert "did not answer" in state["vips"][V4]["reason"], state["vips"][V4]
    finally:
        lab.supervisor.signal_group(lab.nodes[node].proc("haproxy"), signal.SIGCONT)
    _wait_all(lab)


def test_backend_without_servers_withdraws_only_its_vip(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    lab.nodes[node].stop_backend("be_web", 0)
    _wait_without(lab, node, (WEB,))
    # be_rgw still has its servers: those VIPs stay on the node, and stayed the whole time
    state = read_state(lab.nodes[node].state_file)
    assert state["vips"][V4]["state"] == "announced" and state["vips"][V4]["withdraws"] == 0
    assert lab.nexthops(V4) == lab.node_ips(V4)
    assert "has 0/1 server(s) UP, needs 1" in state["vips"][WEB]["reason"], state["vips"][WEB]["reason"]
    lab.nodes[node].start_backend("be_web", 0)
    _wait_all(lab, (WEB,))


def test_one_server_down_keeps_the_vip_when_min_up_is_met(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    lab.nodes[node].stop_backend("be_rgw", 0)
    wait_for(
        lambda: " has 1/2 server(s) UP" in read_state(lab.nodes[node].state_file)["vips"][V4]["reason"],
        timeout=5,
        what="HAProxy to mark be_rgw/s1 down",
    )
    assert lab.nexthops(V4) == lab.node_ips(V4)


def test_maintenance_file_withdraws_every_vip_and_removal_restores(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    maintenance = lab.nodes[node].maintenance_file
    maintenance.write_text("planned\n")
    _wait_without(lab, node)
    assert read_state(lab.nodes[node].state_file)["drained"] is True
    maintenance.unlink()
    _wait_all(lab)


def test_exabgp_sigterm_takes_the_nodes_routes_away(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    started = time.monotonic()
    lab.supervisor.kill(lab.nodes[node].proc("exabgp"), signal.SIGTERM)
    _wait_without(lab, node)
    record_figure("ExaBGP SIGTERM -> node's next hops gone", time.monotonic() - started)
    lab.supervisor.procs[lab.nodes[node].proc("exabgp")].wait(timeout=5)
    log = (lab.workdir / f"{node}-exabgp.log").read_text()
    assert "withdrawn: SIGTERM received" in log or "ExaBGP is shutting down" in log, log[-2000:]
    # the health program went with ExaBGP: nothing of ours is left running in the node
    assert not run("ip", "netns", "pids", node).stdout.split() or all(
        "backend" in run("ps", "-o", "args=", "-p", pid, check=False).stdout
        or "haproxy" in run("ps", "-o", "args=", "-p", pid, check=False).stdout
        for pid in run("ip", "netns", "pids", node).stdout.split()
    )


def test_session_drop_and_reestablish_restores_routes_without_health_change(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    before = read_state(lab.nodes[node].state_file)["vips"]
    lab.network.set_link(node, "eth0", up=False)  # no FIN: the router's hold timer (3 s) drops the session
    try:
        _wait_without(lab, node)
    finally:
        lab.network.set_link(node, "eth0", up=True)
    _wait_all(lab)
    after = read_state(lab.nodes[node].state_file)["vips"]
    for prefix in (V4, WEB, V6):
        # ExaBGP re-sent the routes it had: the health program changed nothing
        assert after[prefix]["announces"] == before[prefix]["announces"] == 1, after[prefix]
        assert after[prefix]["withdraws"] == 0, after[prefix]


def test_ipv6_vip_rides_the_ipv6_session(lab: FastLab) -> None:
    assert lab.nexthops(V6) == lab.node_ips(V6)
    assert all(hop.startswith("2001:db8:100::") for hop in lab.nexthops(V6))
    ok, body = lab.request(lab.vip(V6))
    assert ok, body


def test_ober_status_reports_what_the_router_has(lab: FastLab) -> None:
    node = next(iter(lab.nodes.values()))
    config = str(node.workdir / "health.toml")

    def status_json() -> subprocess.CompletedProcess[str]:
        return run(".venv/bin/ober", "--config", config, "status", "--json", check=False)

    # the router may hold the routes a loop (0.2 s) before the published state has ExaBGP's `done` for each
    with contextlib.suppress(TimeoutError):  # the assertion below shows what it says
        wait_for(lambda: status_json().returncode == 0, timeout=5, what="ober status to exit 0")
    status = status_json()
    assert status.returncode == 0, status.stdout + status.stderr
    data = json.loads(status.stdout)
    assert {p: v["state"] for p, v in data["vips"].items()} == {V4: "announced", WEB: "announced", V6: "announced"}
    node.maintenance_file.write_text("x")
    _wait_without(lab, node.name)
    status = run(".venv/bin/ober", "--config", config, "status", check=False)
    assert status.returncode == 1 and "DRAINED" in status.stdout, status.stdout


# ---- a respawned health program (ExaBGP keeps the dead one's routes and starts a new one)


def _health_pid(lab: FastLab, node: str) -> int:
    exabgp = lab.supervisor.pid(lab.nodes[node].proc("exabgp"))
    children = run("ps", "-ww", "-o", "pid=,args=", "--ppid", str(exabgp), check=False).stdout.splitlines()
    found = [int(line.split()[0]) for line in children if "ober-health" in line]
    assert len(found) == 1, children
    return found[0]


def _respawned(lab: FastLab, node: str, old: int) -> int:
    wait_for(lambda: _health_pid_or_none(lab, node) not in (None, old), timeout=10, what="ExaBGP to respawn it")
    pid = _health_pid_or_none(lab, node)
    assert pid is not None
    return pid


def _health_pid_or_none(lab: FastLab, node: str) -> int | None:
    try:
        return _health_pid(lab, node)
    except AssertionError:
        return None


def test_respawned_while_haproxy_hangs_the_new_health_program_withdraws(lab: FastLab) -> None:
    """Issue 9: SIGKILLed while HAProxy hung, the respawned program believed nothing was announced and never
    withdrew. Now it reads ExaBGP's adj-rib-out, takes the routes as announced, and `fall` timed-out
    checks withdraw them."""
    node, _ = _first_and_rest(lab)
    old = _health_pid(lab, node)
    haproxy = lab.nodes[node].proc("haproxy")
    started = time.monotonic()
    lab.supervisor.signal_group(haproxy, signal.SIGSTOP)  # hung: the old program has no time to withdraw
    os.kill(old, signal.SIGKILL)
    try:
        _respawned(lab, node, old)
        _wait_without(lab, node)
        seconds = time.monotonic() - started
        record_figure("fast lab: health SIGKILL + HAProxy hung -> node's next hops gone", seconds)
        log = (lab.workdir / f"{node}-exabgp.log").read_text()
        assert "ExaBGP announces it (left by the previous health program)" in log, log[-3000:]
        # withdrawn by the new program's own `fall` (2) bad checks: counted, not timed
        assert "withdrawn: 2/2 bad checks" in log, log[-3000:]
    finally:
        lab.supervisor.signal_group(haproxy, signal.SIGCONT)
    _wait_all(lab)


def test_respawned_on_a_healthy_node_no_route_moves(lab: FastLab) -> None:
    node, _ = _first_and_rest(lab)
    old = _health_pid(lab, node)
    with FibWatch(lab.router_ns, {prefix: lab.node_ips(prefix) for prefix in (V4, WEB, V6)}) as watch:
        os.kill(old, signal.SIGKILL)
        new = _respawned(lab, node, old)
        wait_for(lambda: read_state(lab.nodes[node].state_file)["pid"] == new, timeout=10, what="the new state")
        loops = read_state(lab.nodes[node].state_file)["loops"]
        wait_for(lambda: read_state(lab.nodes[node].state_file)["loops"] >= loops + 10, timeout=10, what="loops")
    assert watch.samples > 0 and watch.wrong == [], watch.wrong[:10]
    state = read_state(lab.nodes[node].state_file)
    assert {p: (v["state"], v["announces"]) for p, v in state["vips"].items()} == {
        V4: ("announced", 0),
        WEB: ("announced", 0),
        V6: ("announced", 0),
    }, "taken over from ExaBGP's adj-rib-out, not announced again"


def test_exabgp_sends_each_route_to_its_family_only(lab: FastLab) -> None:
    """Route lines name the peers of their family: ExaBGP no longer logs a family error per route and peer."""
    node, _ = _first_and_rest(lab)
    lab.nodes[node].maintenance_file.write_text("x")
    _wait_without(lab, node)
    lab.nodes[node].maintenance_file.unlink()
    _wait_all(lab)
    log = (lab.workdir / f"{node}-exabgp.log").read_text()
    assert "route added to neighbor 198.51.100.1" in log
    assert "is not configured on neighbor" not in log, log[-3000:]
