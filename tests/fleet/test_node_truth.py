"""Node truth on booted systemd nodes (issue 9): the health program decides from what ExaBGP really holds,
the node knows its BGP sessions, a hung ExaBGP comes back by itself, and every stop path drains.

One fleet of two nodes for the module (a boot and deploy cost about a minute); each test puts the node it
broke back (routes at the router) before it ends. Times are measured where a user sees them: the router's
FIB, and requests through a VIP.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest

from lab.fibwatch import FibWatch
from lab.fleet import VIPS, Fleet, health_process
from lab.nspawn import NspawnNode
from lab.procs import wait_for
from lab.router import BirdRouter
from tests.conftest import record_figure
from tests.fleet.conftest import EXABGP, HAPROXY, others, start_fleet, wait_node_gone

pytestmark = pytest.mark.fleet

OBER = "/opt/ober/venv/bin/ober"
INTERVAL, TIMEOUT, FALL = 0.2, 0.5, 2  # the node model's defaults (ober_health/config.py): what the lab deploys
ROUTER_V4, ROUTER_V6 = "198.51.100.1", "2001:db8:100::1"


@pytest.fixture(scope="module")
def fleet(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("truth"), nodes=2)
    yield fleet
    fleet.down()
    assert not fleet.leftovers, f"processes outlived the fleet: {fleet.leftovers}"


def first(fleet: Fleet) -> NspawnNode:
    return fleet.nodes[next(iter(fleet.nodes))]


def router(fleet: Fleet) -> BirdRouter:
    assert isinstance(fleet.router, BirdRouter)
    return fleet.router


def status(node: NspawnNode) -> tuple[int, dict[str, object]]:
    """`ober status --json` on the node: (exit code, the JSON)."""
    result = node.ssh(OBER, "status", "--json", check=False, timeout=20)
    data = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.returncode, data


def human_status(node: NspawnNode) -> str:
    return node.ssh(OBER, "status", check=False, timeout=20).stdout


def sessions(data: dict[str, object]) -> dict[str, dict[str, object]]:
    found = data.get("sessions")
    assert isinstance(found, dict), data
    return found


def journal(node: NspawnNode, since: float | None = None, unit: str = EXABGP, boot: str = "") -> str:
    argv = ["journalctl", "-u", unit, "-o", "cat", "--no-pager"]
    argv += [f"--since=@{int(since) - 1}"] if since is not None else []
    argv += ["-b", boot] if boot else []
    return node.ssh(*argv, check=False).stdout


def timeline(node: NspawnNode, since: float) -> str:
    """ExaBGP's journal with microsecond stamps: where the seconds went."""
    argv = ["journalctl", "-u", EXABGP, "-o", "short-unix", "--no-pager", f"--since=@{int(since) - 1}"]
    return node.ssh(*argv, check=False).stdout[-4000:]


def node_time(node: NspawnNode) -> float:
    return float(node.ssh("date", "+%s.%N").stdout.strip())


def respawned(node: NspawnNode, old: int) -> int:
    def new_pid() -> int | None:
        try:
            pid = health_process(node)
        except (AssertionError, RuntimeError):
            return None
        return pid if pid != old else None

    wait_for(new_pid, timeout=15, what=f"{node.name}: ExaBGP to start a new health program")
    pid = new_pid()
    assert pid is not None
    return pid


class GoneWatch:
    """Polls the router's FIB every 10 ms from now on; `at` is the first (wall clock) time the node had no
    next hop left for any VIP. Measures in the background, so slow SSH calls meanwhile do not count."""

    def __init__(self, fleet: Fleet, node: NspawnNode) -> None:
        self.fleet, self.node = fleet, node
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rest = others(self.fleet, self.node)
        while not self._stop.is_set() and self.at is None:
            now = time.time()
            if all(self.fleet.nexthops(vip) == self.fleet.node_ips(vip, rest) for vip in VIPS):
                self.at = now
            time.sleep(0.01)

    def wait(self, timeout: float) -> float:
        wait_for(lambda: self.at is not None, timeout=timeout, what=f"{self.node.name}'s next hops to leave")
        assert self.at is not None
        return self.at

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def started_at(node: NspawnNode, pid: int) -> float:
    """When process `pid` on the node was started (wall clock, 10 ms resolution): its respawn."""
    out = node.ssh("sh", "-c", f"'cat /proc/{pid}/stat; getconf CLK_TCK; cat /proc/uptime; date +%s.%N'").stdout
    stat, hertz, uptime, now = out.strip().splitlines()
    ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22 (starttime), counted after the command name
    booted = float(now) - float(uptime.split()[0])  # /proc/stat's btime is whole seconds: too coarse here
    return booted + ticks / int(hertz)


def kill_at(node: NspawnNode, command: str) -> float:
    """Run `command` on the node, then return the node's clock (the host's) just before it ran."""
    out = node.ssh("sh", "-c", f"'date +%s.%N; {command}'").stdout.split()
    return float(out[0])


# ---- a respawned health program takes over what ExaBGP holds


def test_health_killed_while_haproxy_hangs_the_respawned_one_withdraws(fleet: Fleet) -> None:
    node = first(fleet)
    exabgp = node.main_pid(EXABGP)
    old = health_process(node)
    master = node.main_pid(HAPROXY)
    # HAProxy hung (master and workers), and the health program killed before it could withdraw
    watch = GoneWatch(fleet, node)
    killed = kill_at(node, f"kill -STOP {master} $(ps -o pid= --ppid {master}); kill -KILL {old}")
    try:
        new = respawned(node, old)
        gone = watch.wait(timeout=15)
        record_figure("fleet: health SIGKILL + HAProxy hung -> next hops gone", gone - killed)
        seconds = gone - started_at(node, new)
        record_figure("fleet: respawn (HAProxy hung) -> next hops gone", seconds)
    finally:
        watch.stop()
        node.ssh("sh", "-c", f"'kill -CONT {master} $(ps -o pid= --ppid {master})'", check=False)
    log = journal(node, since=killed)
    assert f"ober-health[{new}]: 203.0.113.10/32: ExaBGP announces it (left by the previous health program)" in log
    # the new program's own `fall` bad checks withdrew it (its streak starts at 0): counted, not timed
    assert f"ober-health[{new}]: 203.0.113.10/32 withdrawn: {FALL}/{FALL} bad checks" in log, log[-3000:]
    assert node.main_pid(EXABGP) == exabgp, "ExaBGP was restarted: the withdraw was not the new program's doing"
    fleet.wait_routes(timeout=30)


def test_health_killed_while_the_backends_are_down_the_respawned_one_withdraws(fleet: Fleet) -> None:
    """The program dies at the worst moment: its RGW gateways are being cut, and it has not withdrawn. The one
    ExaBGP starts in its place must take the routes ExaBGP still holds as its own and withdraw them.

    The old program is killed the moment the gateways are cut (before HAProxy can mark them DOWN, inter 1s
    fall 2), not stopped while HAProxy finds out: a stopped program feeds no watchdog, and the unit's
    watchdog (2.4 s) would restart ExaBGP, which is not the path under test."""
    node = first(fleet)
    exabgp = node.main_pid(EXABGP)
    old = health_process(node)
    watch = GoneWatch(fleet, node)
    try:
        killed = kill_at(node, f"kill -KILL {old}")
        fleet.cut_backends(node, cut=True)
        new = respawned(node, old)
        gone = watch.wait(timeout=15)
        watch.stop()
        record_figure("fleet: health SIGKILL + backends cut -> next hops gone", gone - killed)
        seconds = gone - started_at(node, new)
        record_figure("fleet: respawn (backends cut) -> next hops gone", seconds)
        assert node.main_pid(EXABGP) == exabgp, "ExaBGP was restarted (watchdog): not the respawn path"
        log = journal(node, since=killed)
        assert f"ober-health[{new}]: 203.0.113.10/32 withdrawn: {FALL}/{FALL} bad checks" in log, log[-3000:]
    finally:
        fleet.cut_backends(node, cut=False)
    fleet.wait_routes(timeout=30)


def test_health_killed_on_a_healthy_node_no_route_moves(fleet: Fleet) -> None:
    node = first(fleet)
    old = health_process(node)
    with FibWatch(fleet.router_ns, {vip: fleet.node_ips(vip) for vip in VIPS}) as watch:  # every 10 ms
        node.ssh("kill", "-KILL", str(old))
        new = respawned(node, old)
        wait_for(lambda: status(node)[1].get("pid") == new, timeout=15, what="the new program's state")
        loops = status(node)[1]["loops"]
        assert isinstance(loops, int)
        wait_for(lambda: int(str(status(node)[1]["loops"])) >= loops + 10, timeout=15, what="ten more loops")
    assert watch.samples > 0 and watch.wrong == [], watch.wrong[:10]
    code, data = status(node)
    assert code == 0, data
    vips = data["vips"]
    assert isinstance(vips, dict)
    assert {prefix: vip["announces"] for prefix, vip in vips.items()} == dict.fromkeys(VIPS, 0)


# ---- the node knows its sessions


def test_a_session_disabled_on_the_router_turns_status_and_doctor_red_naming_the_peer(fleet: Fleet) -> None:
    node = first(fleet)
    protocol = BirdRouter.protocol(node.name, 4)
    assert status(node)[0] == 0
    started = time.monotonic()
    router(fleet).disable(protocol, "planned maintenance")
    try:
        wait_for(lambda: status(node)[0] == 1, timeout=10, what="ober status to exit 1", interval=0.1)
        record_figure("fleet: session disabled at the router -> ober status red", time.monotonic() - started)
        assert time.monotonic() - started < 5.0
        _, data = status(node)
        human = human_status(node)
        session = sessions(data)[ROUTER_V4]
        assert session["state"] != "established"
        assert str(session["reason"]).startswith(
            'peer sent NOTIFICATION: Cease / Administrative Shutdown / Shutdown Communication: "planned maintenance"'
        ), session
        assert f"{ROUTER_V4} (AS65000): down since " in human, human
        assert sessions(data)[ROUTER_V6]["state"] == "established"
        doctor = node.ssh(OBER, "doctor", check=False, timeout=60)
        assert doctor.returncode == 1
        assert f"FAIL  BGP session {ROUTER_V4} (AS65000): down" in doctor.stdout, doctor.stdout
        assert f"router {ROUTER_V4}" in doctor.stdout
        log = journal(node)
        assert f"BGP session with {ROUTER_V4} (AS65000) down: peer sent NOTIFICATION: Cease" in log, log[-2000:]
    finally:
        router(fleet).enable(protocol)
    wait_for(lambda: status(node)[0] == 0, timeout=60, what="ober status green again", interval=0.5)
    assert node.ssh(OBER, "doctor", check=False, timeout=60).returncode == 0
    fleet.wait_routes(timeout=30)


def test_a_wrong_peer_as_at_the_router_is_said_in_words(fleet: Fleet) -> None:
    node = first(fleet)
    router(fleet).set_peer_asn(node.name, 65009)  # the router expects another AS from this node
    try:

        def refused() -> bool:
            code, data = status(node)
            reasons = [str(s["reason"]) for s in sessions(data).values()] if data else []
            return code == 1 and all("OPEN message error / Bad Peer AS" in r for r in reasons)

        wait_for(refused, timeout=30, what="both sessions refused with Bad Peer AS", interval=0.5)
        human = human_status(node)
        assert f"{ROUTER_V4} (AS65000): down since " in human
        assert "peer sent NOTIFICATION: OPEN message error / Bad Peer AS" in human, human
        assert "NOT OK (exit 1)" in human
    finally:
        router(fleet).set_peer_asn(node.name, 65001)
    wait_for(lambda: status(node)[0] == 0, timeout=60, what="ober status green again", interval=0.5)
    fleet.wait_routes(timeout=30)


# ---- a hung ExaBGP comes back by itself


def test_test_bgp_with_no_options_reads_the_peers_of_health_toml(fleet: Fleet) -> None:
    """`ober test-bgp` as an operator types it: the deployed health.toml names the peers. With ExaBGP's
    sessions up it keeps off them ("live"); with ExaBGP stopped it opens its own sessions, and a router that
    refuses this node's AS is named."""
    node = first(fleet)
    live = node.ssh(OBER, "test-bgp", check=False, timeout=30)
    assert live.returncode == 0, live.stdout + live.stderr
    assert live.stdout.count("live") >= 2 and ROUTER_V4 in live.stdout and ROUTER_V6 in live.stdout, live.stdout
    answers: list[str] = []

    def test_bgp(ok: bool) -> bool:
        result = node.ssh(OBER, "test-bgp", check=False, timeout=30)
        answers.append(result.stdout + result.stderr)
        return (result.returncode == 0) == ok

    node.ssh("systemctl", "stop", EXABGP)
    try:
        # a router may hold off a peer that just closed (BIRD's error wait): ask again until it answers
        wait_for(lambda: test_bgp(ok=True), timeout=30, what="test-bgp established", interval=0.5)
        assert answers[-1].count("established") >= 2, answers[-1]
        router(fleet).set_peer_asn(node.name, 65009)
        try:
            wait_for(lambda: test_bgp(ok=False), timeout=30, what="test-bgp to see the AS refused", interval=0.5)
        finally:
            router(fleet).set_peer_asn(node.name, 65001)
        assert "Bad Peer AS" in answers[-1], answers[-1]
    finally:
        node.ssh("systemctl", "start", EXABGP, check=False)
    fleet.wait_routes(timeout=60)


def test_exabgp_sigstopped_systemd_restarts_it_and_the_routes_return(fleet: Fleet) -> None:
    node = first(fleet)
    exabgp = node.main_pid(EXABGP)
    started = time.monotonic()
    node.ssh("kill", "-STOP", str(exabgp))
    try:
        gone = wait_node_gone(fleet, node, timeout=15)  # the router's hold timer (3 s)
        record_figure("fleet: ExaBGP SIGSTOP -> next hops gone (router hold timer)", gone)
        fleet.wait_routes(timeout=60)
        record_figure("fleet: ExaBGP SIGSTOP -> next hops back (no person acting)", time.monotonic() - started)
    finally:
        node.ssh("kill", "-CONT", str(exabgp), check=False)  # a no-op once systemd replaced it
    assert node.main_pid(EXABGP) not in (0, exabgp), "ExaBGP was not restarted"
    log = journal(node)
    assert "ExaBGP has not answered" in log and "WATCHDOG=trigger" in log, log[-3000:]
    assert status(node)[0] == 0


# ---- the state file unwritable, odd drain paths


def test_state_dir_unwritable_status_tells_the_truth_and_drain_wait_confirms(fleet: Fleet) -> None:
    node = first(fleet)
    node.ssh("chown", "root:root", "/run/ober")  # ober-health (user ober) can no longer write its state
    try:
        wait_for(lambda: "cannot write" in str(status(node)[1].get("warnings")), timeout=10, what="the warning")
        code, data = status(node)
        human = human_status(node)
        assert code == 0 and data["source"] == "status endpoint", data
        assert "NOT RUNNING" not in human and "WARNING: cannot write /run/ober/state.json: Permission denied" in human
        doctor = node.ssh(OBER, "doctor", check=False, timeout=60)
        assert doctor.returncode == 1 and "FAIL  state file /run/ober/state.json is written" in doctor.stdout
        drain = node.ssh(OBER, "drain", "--wait", "--timeout", "20", check=False, timeout=60)
        at_return = {vip: fleet.nexthops(vip) for vip in VIPS}
        assert drain.returncode == 0, drain.stdout + drain.stderr
        assert "every VIP withdrawn (ExaBGP acknowledged)" in drain.stdout
        for vip in VIPS:  # said withdrawn: the router agrees at that moment, not later
            assert at_return[vip] == fleet.node_ips(vip, others(fleet, node)), (vip, at_return[vip])
        assert node.ssh(OBER, "undrain").returncode == 0
    finally:
        node.ssh("chown", "ober:ober", "/run/ober", check=False)
        node.ssh(OBER, "undrain", check=False)
    fleet.wait_routes(timeout=30)


def test_maintenance_path_that_is_a_directory_is_a_clear_error(fleet: Fleet) -> None:
    node = first(fleet)
    since = node_time(node)
    node.ssh("mkdir", "/etc/ober/maintenance")
    try:
        wait_node_gone(fleet, node, timeout=10)  # present: drained, the safe side
        for command in ("drain", "undrain"):
            result = node.ssh(OBER, command, check=False)
            assert result.returncode == 1, result
            assert "/etc/ober/maintenance is a directory, not a drain file: remove it yourself (rmdir)" in (
                result.stderr
            )
            assert "Traceback" not in result.stdout + result.stderr
        code, data = status(node)
        assert code == 1 and "is a directory" in str(data["drain_reason"]), data
        doctor = node.ssh(OBER, "doctor", check=False, timeout=60).stdout
        assert "FAIL  drain path /etc/ober/maintenance: /etc/ober/maintenance is a directory" in doctor, doctor
        assert "rmdir" in doctor
        assert "/etc/ober/maintenance is a directory, not a drain file: counted as present" in journal(node, since)
    finally:
        node.ssh("rmdir", "/etc/ober/maintenance", check=False)
    fleet.wait_routes(timeout=30)


def test_maintenance_path_the_health_program_cannot_check_counts_as_drained(fleet: Fleet) -> None:
    node = first(fleet)
    since = node_time(node)
    node.ssh("chmod", "0700", "/etc/ober")  # user ober can no longer look for /etc/ober/maintenance
    try:
        wait_node_gone(fleet, node, timeout=10)
        code, data = status(node)
        assert code == 1 and "Permission denied" in str(data["drain_reason"]), data
        assert "cannot check /etc/ober/maintenance (Permission denied): counted as present" in journal(node, since)
    finally:
        node.ssh("chmod", "0750", "/etc/ober", check=False)
    fleet.wait_routes(timeout=30)


# ---- every stop path drains: reboot, isolate (D-Bus going down), under client load


def test_reboot_under_a_client_loop_drains_first_and_no_request_fails(fleet: Fleet) -> None:
    node = first(fleet)
    marks = fleet.rgw_marks()
    client = fleet.start_client(VIPS[0], duration=14.0)
    time.sleep(2.0)
    boots = node.boots
    started = time.monotonic()
    node.ssh("systemctl", "reboot", check=False)
    wait_for(lambda: node.boots > boots, timeout=90, what=f"{node.name} to reboot")
    record_figure("fleet: systemctl reboot -> node booting again", time.monotonic() - started)
    result = fleet.client_result(client)
    node.wait_running(timeout=90)
    fleet.wait_routes(timeout=60)
    record_figure("fleet: systemctl reboot -> next hops back", time.monotonic() - started)
    units = ["-u", EXABGP, "-u", HAPROXY, "-u", "ober-vips.service", "-o", "short-unix", "--no-pager"]
    previous = node.ssh("journalctl", "-b", "-1", *units, check=False).stdout
    failed = f"{result.failed} of {result.ok + result.failed} requests failed: {result.errors}"
    assert result.failed == 0, f"{failed}\n{previous[-6000:]}"
    forwarded = fleet.forwarded_since(marks, VIPS[0])
    assert forwarded.get(node.name), f"{node.name} forwarded nothing to RGW before the reboot: {forwarded}"
    stop = journal(node, boot="-1")
    assert "drain: every VIP withdrawn (ExaBGP acknowledged)" in stop, stop[-3000:]
    assert "drain: no client session left" in stop


def test_isolate_rescue_target_drains_first_and_no_request_fails(fleet: Fleet) -> None:
    node = first(fleet)
    client = fleet.start_client(VIPS[0], duration=10.0)
    time.sleep(2.0)
    since = node_time(node)
    node.ssh("systemctl", "isolate", "rescue.target", check=False, timeout=60)
    try:
        wait_node_gone(fleet, node, timeout=30)
        wait_for(
            lambda: node.nsenter("systemctl", "is-active", EXABGP).stdout.strip() in ("inactive", "failed"),
            timeout=60,
            what="exabgp.service stopped",
        )
        result = fleet.client_result(client)
        stop = node.nsenter("journalctl", "-u", EXABGP, "-o", "cat", "--no-pager", f"--since=@{int(since) - 1}").stdout
        assert "drain: every VIP withdrawn (ExaBGP acknowledged)" in stop, stop[-3000:]
    finally:
        node.nsenter("systemctl", "isolate", "multi-user.target", timeout=120)
    node.wait_running(timeout=90)
    fleet.wait_routes(timeout=60)
    assert result.failed == 0, f"{result.failed} of {result.ok + result.failed} requests failed: {result.errors}"
