"""The decider in-process: a fake clock, fake check rounds and a fake ExaBGP that answers from its own
adj-rib-out, as ExaBGP 5 does. Each test runs minutes of the program's time in milliseconds.

What the real pipes, threads and signals add is covered by tests/contract (ExaBGP played over real pipes)
and the labs; here every decision and its timing is pinned down exactly.
"""

from __future__ import annotations

import json
import logging
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ober_health.checks import CheckResult, CheckRound
from ober_health.config import Config, parse_config
from ober_health.exabgp import parse_line
from ober_health.masterwatch import MasterExited, MasterWatched
from ober_health.program import QUIET_PUBLISH, QUIET_PUBLISH_VIPS, CheckDone, HealthProgram, Signalled, StdinClosed
from ober_health.statefile import State, validate_state

V4, V6 = "203.0.113.10/32", "2001:db8:203::10/128"
PEER_V4, PEER_V6 = "198.51.100.1", "2001:db8:100::1"
INTERVAL, RISE, FALL = 0.2, 3, 2
ANNOUNCE_V4 = f"neighbor {PEER_V4} announce route {V4} next-hop self med 100"
ANNOUNCE_V6 = f"neighbor {PEER_V6} announce route {V6} next-hop self"
WITHDRAW_V4 = f"neighbor {PEER_V4} withdraw route {V4} next-hop self"
WITHDRAW_V6 = f"neighbor {PEER_V6} withdraw route {V6} next-hop self"


def make_config(tmp_path: Path, vips: list[dict[str, Any]] | None = None, **health: Any) -> Config:
    return parse_config(
        {
            "health": {
                "interval": INTERVAL,
                "timeout": 0.5,
                "rise": RISE,
                "fall": FALL,
                "state_file": str(tmp_path / "state.json"),
                "maintenance_file": str(tmp_path / "maintenance"),
                "drain_file": str(tmp_path / "drain"),
                **health,
            },
            "bgp": {"local_asn": 65001, "router_id": "198.51.100.11", "hold_time": 9},
            "peer": [{"address": PEER_V4, "asn": 65000}, {"address": PEER_V6, "asn": 65000}],
            "vip": vips if vips is not None else [{"prefix": V4, "med": 100}, {"prefix": V6}],
        }
    )


class FakeClock:
    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 5_000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass
class FakeNotifier:
    messages: list[str] = field(default_factory=list)

    def notify(self, message: str) -> bool:
        self.messages.append(message)
        return True

    def count(self, assignment: str) -> int:
        return sum(assignment in message.split("\n") for message in self.messages)


@dataclass
class FakeExabgp:
    """Answers each line the program writes, in order, as ExaBGP 5 does (see ober_health.exabgp)."""

    rib: dict[str, set[str]] = field(default_factory=dict)
    up: set[str] = field(default_factory=lambda: {PEER_V4, PEER_V6})
    hold: int = 3  # the router's, in its OPEN: negotiated min(9, 3)
    answering: bool = True
    route_answer: str = "done"
    rib_answer: str = "done"

    def answer(self, line: str) -> list[str]:
        if line == "show adj-rib out":
            if self.rib_answer != "done":
                return [self.rib_answer]
            routes = [
                f"{peer} {'ipv6' if ':' in prefix else 'ipv4'} unicast {prefix} next-hop self"
                for prefix, peers in sorted(self.rib.items())
                for peer in sorted(peers)
            ]
            return [*routes, "done"]
        if line == "show neighbor json":
            table = [
                {
                    "state": "up" if peer in self.up else "down",
                    "duration": 7 if peer in self.up else 0,
                    "fsm": "ESTABLISHED" if peer in self.up else "ACTIVE",
                    "local": {"hold": 9},
                    "peer": {"address": peer, "hold": self.hold},
                }
                for peer in (PEER_V4, PEER_V6)
            ]
            return [json.dumps(table), "done"]
        if self.route_answer == "done":
            verb = "announce" if " announce route " in f" {line}" else "withdraw"
            selected, _, rest = line.partition(f"{verb} route ")
            prefix = rest.split()[0]
            peers = set(re.findall(r"neighbor (\S+)", selected))
            if verb == "announce":
                self.rib.setdefault(prefix, set()).update(peers)
            else:
                self.rib[prefix] = self.rib.get(prefix, set()) - peers
                if not self.rib[prefix]:
                    del self.rib[prefix]
        return [self.route_answer]


class Harness:
    """Drives a HealthProgram as ober_health.main.serve does, with checks done in zero threads."""

    def __init__(
        self, tmp_path: Path, exabgp: FakeExabgp | None = None, vips: list[dict[str, Any]] | None = None, **health: Any
    ) -> None:
        self.clock = FakeClock()
        self.notifier = FakeNotifier()
        self.exabgp = exabgp or FakeExabgp()
        self.written: list[str] = []
        self.answered = 0  # lines of `written` the fake ExaBGP has answered
        self.published: list[bytes] = []
        self.ok: dict[str, bool] = {V4: True, V6: True}
        self.drain = ""
        self.refused = False  # failed checks are refused connections (decisive), not 503s
        self.check_seconds = 0.01
        self.checks = 0
        self.steps = 0  # turns of the driver's loop
        self.hang_checks = False
        self.config = make_config(tmp_path, vips, **health)
        if vips is not None:
            self.ok = {vip["prefix"]: True for vip in vips}
        self.program = HealthProgram(
            self.config, self._write, self.notifier, clock=self.clock, publish=self.published.append
        )
        self.program.start()
        self.feed_answers()

    def _write(self, data: bytes) -> None:
        self.written += data.decode().splitlines()

    @property
    def routes(self) -> list[str]:
        """The route commands written (not the probes)."""
        return [line for line in self.written if not line.startswith("show ")]

    def feed(self, line: str) -> None:
        event = parse_line(line)
        assert event is not None
        self.program.handle(event)

    def feed_answers(self) -> None:
        while self.exabgp.answering and self.answered < len(self.written):
            line = self.written[self.answered]
            self.answered += 1
            for reply in self.exabgp.answer(line):
                self.feed(reply)

    def run(self, seconds: float) -> None:
        end = self.clock.mono + seconds
        while self.clock.mono < end and not self.program.finished:
            self.steps += 1
            if self.program.check_due() and not self.hang_checks:
                self.program.check_started()
                started, started_at = self.clock.mono, self.clock.wall
                self.clock.advance(self.check_seconds)
                results = {
                    prefix: CheckResult(
                        ok,
                        "ok" if ok else "refused" if self.refused else "503",
                        True,
                        self.refused,
                        code="" if ok else "haproxy_unreachable" if self.refused else "haproxy_status",
                    )
                    for prefix, ok in self.ok.items()
                }
                self.checks += 1
                checks = CheckRound(started, started_at, self.drain, (), results, self.check_seconds)
                self.program.handle(CheckDone(checks))
            else:
                wake = min(self.program.next_wakeup(), end)
                self.clock.advance(max(0.001, wake - self.clock.mono))
                self.program.tick()
            self.feed_answers()

    def state(self) -> State:
        return validate_state(json.loads(self.published[-1]), "published")


# ---- start: reconcile with ExaBGP's adj-rib-out


def test_a_fresh_start_reads_the_rib_then_announces_after_rise_checks(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.written[:2] == ["show adj-rib out", "show neighbor json"], "nothing decided before the RIB is read"
    h.run(INTERVAL * (RISE - 1) - 0.05)  # checks at 0, 0.2, ...: one less than rise
    assert h.routes == [] and h.checks == RISE - 1
    h.run(INTERVAL)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6]  # per-family selectors: no "family not configured" at ExaBGP
    assert h.state()["vips"][V4]["acked"] is None  # the loop's state: written before ExaBGP answered
    h.run(INTERVAL)
    vips = h.state()["vips"]
    assert vips[V4]["state"] == "announced" and vips[V4]["acked"] is True and vips[V4]["command"] == "announce"
    assert h.exabgp.rib == {V4: {PEER_V4}, V6: {PEER_V6}}
    assert "held 0 of 2 VIP(s)" in h.state()["exabgp"]["reconciled"]


def test_a_respawn_on_a_healthy_node_takes_over_the_routes_and_says_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(rib={V4: {PEER_V4}, V6: {PEER_V6}}))
    h.run(60.0)
    assert h.routes == [], "a healthy node's routes must not flap when its health program is respawned"
    state = h.state()
    assert {p: (v["state"], v["acked"], v["announces"]) for p, v in state["vips"].items()} == {
        V4: ("announced", True, 0),
        V6: ("announced", True, 0),
    }
    assert state["vips"][V4]["held_by"] == [PEER_V4]
    assert (
        "held 2 of 2 VIP(s) (203.0.113.10/32, 2001:db8:203::10/128), taken as announced"
        in (state["exabgp"]["reconciled"])
    )


@pytest.mark.parametrize("broken", [V4, V6])
def test_a_respawn_on_a_failing_node_withdraws_after_fall_checks(tmp_path: Path, broken: str) -> None:
    h = Harness(tmp_path, FakeExabgp(rib={V4: {PEER_V4}, V6: {PEER_V6}}))
    h.ok[broken] = False
    h.run(INTERVAL * (FALL - 1) - 0.05)
    assert h.routes == [] and h.checks == FALL - 1
    h.run(INTERVAL)
    assert h.checks == FALL
    assert h.routes == [WITHDRAW_V4 if broken == V4 else WITHDRAW_V6]
    assert broken not in h.exabgp.rib


def test_a_respawn_on_a_drained_node_withdraws_at_the_first_check(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(rib={V4: {PEER_V4}, V6: {PEER_V6}}))
    h.drain = "maintenance: /etc/ober/maintenance present"
    h.run(0.05)
    assert h.checks == 1 and h.routes == [WITHDRAW_V4, WITHDRAW_V6]


def test_a_prefix_exabgp_holds_that_the_config_lost_is_withdrawn_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(rib={"203.0.113.99/32": {PEER_V4}, V4: {PEER_V4}}))
    assert h.routes == [f"neighbor {PEER_V4} withdraw route 203.0.113.99/32 next-hop self"]
    assert h.exabgp.rib == {V4: {PEER_V4}}
    h.run(5.0)
    assert h.routes[1:] == [ANNOUNCE_V6], "V4 was kept (healthy), V6 announced after rise"


def test_no_adj_rib_out_to_read_withdraws_every_vip(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(rib={V4: {PEER_V4}}, rib_answer="error"))
    assert h.routes == [WITHDRAW_V4, WITHDRAW_V6]
    assert "every VIP withdrawn at start" in h.program.reconciled
    h.exabgp.rib_answer = "done"
    h.run(5.0)
    assert h.routes[2:] == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_an_answer_nobody_waits_for_is_logged_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(Answers ExaBGP wrote for the previous process before this one started are dropped unread by
    ober_health.main.stale_answers; one arriving later is logged, never taken for an answer.)"""
    h = Harness(tmp_path)
    h.run(2.0)
    with caplog.at_level(logging.WARNING):
        h.feed("done")
        h.feed("error")
    assert "ExaBGP answered 'done' with no command waiting" in caplog.text
    h.run(2.0)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6] and h.state()["vips"][V4]["acked"] is True


# ---- later reads of ExaBGP's adj-rib-out


def test_a_route_exabgp_lost_is_announced_again(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6]
    del h.exabgp.rib[V4]  # e.g. ExaBGP dropped it with a neighbor it stopped
    h.run(3.0)
    assert h.routes[2:] == [ANNOUNCE_V4]


def test_a_route_exabgp_announces_behind_our_back_is_adopted_then_withdrawn_when_failing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.ok[V4] = False
    h.run(2.0)
    assert h.routes == [ANNOUNCE_V6]
    h.exabgp.rib[V4] = {PEER_V4}
    h.run(1.2 + INTERVAL)
    assert h.routes[1:] == [WITHDRAW_V4]


def test_a_read_older_than_our_last_command_is_not_held_against_it(tmp_path: Path) -> None:
    """`show adj-rib out` answered after an announce sent later: the answer predates the announce."""
    h = Harness(tmp_path)
    h.exabgp.answering = False
    h.run(0.1)
    h.exabgp.answering = True
    h.feed_answers()
    h.run(INTERVAL * RISE)
    h.exabgp.answering = False  # the next probe goes out, then the announce is decided before it is answered
    written = len(h.written)
    h.run(1.0)
    assert any(line.startswith("show") for line in h.written[written:])
    h.exabgp.answering = True
    h.feed_answers()
    h.run(3.0)
    assert h.routes.count(ANNOUNCE_V4) == 1, h.routes


# ---- ExaBGP's liveness


def test_a_silent_exabgp_triggers_the_watchdog_after_the_negotiated_hold_time(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    pings = h.notifier.count("WATCHDOG=1")
    assert pings > 5 and h.program.exabgp_timeout() == 3.0  # min(9 ours, 3 the router's), from the table
    h.exabgp.answering = False
    silent_from = h.clock.mono
    while not h.notifier.count("WATCHDOG=trigger") and h.clock.mono < silent_from + 30:
        h.run(0.05)
    waited = h.clock.mono - silent_from
    # the next probe goes out within PROBE_INTERVAL, is owed for 3 s, and the silence is confirmed 0.5 s later
    assert 3.0 + 0.5 <= waited <= 1.0 + 3.0 + 0.5 + INTERVAL, waited
    pings = h.notifier.count("WATCHDOG=1")
    h.run(5.0)
    assert h.notifier.count("WATCHDOG=1") == pings, "no ping for a hung ExaBGP: systemd must restart it"
    assert h.notifier.count("WATCHDOG=trigger") == 1
    state = h.state()
    assert state["exabgp"]["answering"] is False and "has not answered `show adj-rib out`" in state["exabgp"]["problem"]


def test_a_slow_exabgp_inside_the_bound_is_never_called_hung(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    for _ in range(20):  # 20 rounds of: every answer 2.9 s late
        h.exabgp.answering = False
        h.run(2.9)
        h.exabgp.answering = True
        h.feed_answers()
    assert h.notifier.count("WATCHDOG=trigger") == 0
    assert h.state()["exabgp"]["answering"] is True


def test_a_late_tick_of_our_own_is_not_taken_for_a_silent_exabgp(tmp_path: Path) -> None:
    """This process starved for 5 s (a loaded machine): ExaBGP's answer is already in the pipe. The first tick
    only suspects; the answer, read before the confirming tick, clears it."""
    h = Harness(tmp_path)
    h.run(2.0)
    h.exabgp.answering = False
    h.run(1.1)  # a probe is out
    h.clock.advance(5.0)
    h.program.tick()  # late: suspects
    h.exabgp.answering = True
    h.feed_answers()  # the answer that was waiting
    h.run(2.0)
    assert h.notifier.count("WATCHDOG=trigger") == 0


def test_without_sessions_the_bound_is_the_configured_hold_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(up=set()))
    h.run(2.0)
    assert h.program.exabgp_timeout() == 9.0


# ---- a dead HAProxy (ober_health.masterwatch, a refused connection): withdrawn at once


def test_haproxys_master_exiting_withdraws_every_vip_at_once_and_rise_brings_them_back(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.program.handle(MasterWatched(4242))
    h.run(2.0)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6]
    h.program.handle(MasterExited(4242))  # between two check rounds: no check needed
    assert h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]
    assert h.state()["vips"][V4]["reason"] == "HAProxy's master (pid 4242) exited"
    h.ok = {V4: False, V6: False}
    h.run(1.0)
    assert h.routes[4:] == [], "one withdraw per VIP, not one per failed check"
    h.ok = {V4: True, V6: True}  # HAProxy restarted
    checks = h.checks
    h.run(INTERVAL * (RISE - 1) + 0.05)
    assert h.routes[4:] == [] and h.checks - checks == RISE - 1
    h.run(INTERVAL)
    assert h.routes[4:] == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_a_check_round_begun_before_the_master_exited_does_not_count_as_good(tmp_path: Path) -> None:
    """With rise 1, a round that saw HAProxy alive just before its death would announce it again at once."""
    h = Harness(tmp_path, rise=1)
    h.run(1.0)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6]
    while not h.program.check_due():
        h.clock.advance(0.01)
        h.program.tick()
    h.program.check_started()
    started, started_at = h.clock.mono, h.clock.wall
    h.clock.advance(0.005)
    h.program.handle(MasterExited(4242))  # while the round is in flight
    late = CheckRound(started, started_at, "", (), {V4: CheckResult(True, "ok"), V6: CheckResult(True, "ok")})
    h.program.handle(CheckDone(late))
    assert h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]
    h.run(INTERVAL)  # the next round, begun after: counts
    assert h.routes[4:] == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_a_refused_connection_withdraws_at_the_first_check(tmp_path: Path) -> None:
    h = Harness(tmp_path, fall=5)
    h.run(2.0)
    checks = h.checks
    h.ok[V4], h.refused = False, True
    h.run(INTERVAL)
    assert h.checks == checks + 1 and h.routes[2:] == [WITHDRAW_V4], "no `fall` (5) to wait for"


def test_a_failure_that_is_not_decisive_still_waits_for_fall(tmp_path: Path) -> None:
    """503s and timeouts (what a slow moment or a reload could show) keep the hysteresis."""
    h = Harness(tmp_path, fall=5)
    h.run(2.0)
    checks = h.checks
    h.ok[V4] = False
    h.run(INTERVAL * 4)
    assert h.checks - checks == 4 and h.routes[2:] == []
    h.run(INTERVAL)
    assert h.routes[2:] == [WITHDRAW_V4]


def test_the_master_exiting_before_the_rib_was_read_writes_nothing(tmp_path: Path) -> None:
    """Reconciling: what ExaBGP holds is not known yet; the first check round (refused) decides."""
    h = Harness(tmp_path, FakeExabgp(answering=False))
    h.program.handle(MasterExited(4242))
    assert h.routes == []


# ---- stopping


def test_sigterm_right_after_an_announce_withdraws_it(tmp_path: Path) -> None:
    """The old design needed a "superset" of advertised prefixes for a signal landing between a decision and
    its line; here the signal is an event, handled after the whole decision, line included."""
    h = Harness(tmp_path)
    h.run(INTERVAL * (RISE - 1) - 0.05)
    h.exabgp.answering = False  # the announce will not even be acknowledged yet
    h.run(INTERVAL)
    assert h.routes == [ANNOUNCE_V4, ANNOUNCE_V6]
    h.program.handle(Signalled(signal.SIGTERM))
    assert h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]
    h.exabgp.answering = True
    h.feed_answers()
    h.program.tick()
    assert h.program.finished and h.state()["stopping"] is True


def test_sigterm_while_a_check_hangs_withdraws_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    h.hang_checks = True  # the checker thread is stuck in a hung HAProxy; the decider is not
    h.run(1.0)
    h.program.handle(Signalled(signal.SIGTERM))
    assert h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]


def test_sigterm_without_acks_ends_after_the_bounded_wait(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(tmp_path, shutdown_ack_timeout=1.0)
    h.run(2.0)
    h.exabgp.answering = False
    with caplog.at_level(logging.WARNING):
        h.program.handle(Signalled(signal.SIGTERM))
        h.run(0.9)
        assert not h.program.finished
        h.run(0.2)
    assert h.program.finished
    assert "did not acknowledge every withdraw in 1.0s" in caplog.text


def test_a_second_sigterm_and_exabgps_shutdown_add_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    h.exabgp.answering = False
    h.program.handle(Signalled(signal.SIGTERM))
    h.feed("shutdown 4242 1")
    h.program.handle(Signalled(signal.SIGTERM))
    assert h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]


def test_exabgps_shutdown_withdraws_without_waiting_for_acks(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    h.exabgp.answering = False  # ExaBGP saying `shutdown` reads no more commands
    h.feed("shutdown 4242 1")
    assert h.program.finished and h.routes[2:] == [WITHDRAW_V4, WITHDRAW_V6]


def test_sigterm_before_the_rib_was_read_withdraws_every_vip(tmp_path: Path) -> None:
    """ExaBGP may hold a dead process's routes, and we do not know which yet: withdraw them all."""
    h = Harness(tmp_path, FakeExabgp(answering=False))
    h.program.handle(Signalled(signal.SIGTERM))
    assert h.routes == [WITHDRAW_V4, WITHDRAW_V6]


def test_stdin_eof_ends_at_once_and_writes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    before = list(h.written)
    h.program.handle(StdinClosed())
    assert h.program.finished and h.written == before


# ---- sessions


def test_sessions_from_events_and_tables_with_the_reason_in_words(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    sessions = h.state()["sessions"]
    assert sessions[PEER_V4]["state"] == "established" and sessions[PEER_V4]["asn"] == 65000
    assert sessions[PEER_V4]["since"] == pytest.approx(h.clock.wall - 2.0 - 7, abs=0.1)  # duration 7 s
    h.feed(f"neighbor {PEER_V4} receive notification code 6 subcode 2 data 0x")
    h.feed(f"neighbor {PEER_V4} down - notification received (6,2)")
    h.exabgp.up.discard(PEER_V4)
    for _ in range(3):  # the router keeps closing the reconnects
        h.feed(f"neighbor {PEER_V4} connected")
        h.feed(f"neighbor {PEER_V4} down - closing connection")
    h.run(1.5)
    down = h.state()["sessions"][PEER_V4]
    assert down["state"] == "down"
    assert down["reason"] == (
        "peer sent NOTIFICATION: Cease / Administrative Shutdown; 3 more attempt(s) failed since it went down,"
        " the last: connection closed (TCP)"
    )
    h.feed(f"neighbor {PEER_V4} up")
    h.exabgp.up.add(PEER_V4)
    h.run(1.5)
    assert h.state()["sessions"][PEER_V4]["state"] == "established"
    assert h.state()["sessions"][PEER_V4]["reason"] == ""


def test_a_session_refused_from_its_first_open_is_down_with_the_peers_words(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(up={PEER_V6}))
    h.run(1.0)
    assert h.state()["sessions"][PEER_V4]["state"] == "down"  # never `up`, known from the table
    h.feed(f"neighbor {PEER_V4} connected")
    h.feed(f"neighbor {PEER_V4} receive notification code 2 subcode 2 data 0x0000FDE9")
    h.feed(f"neighbor {PEER_V4} down - notification received (2,2)")
    h.run(0.5)
    assert h.state()["sessions"][PEER_V4]["reason"] == "peer sent NOTIFICATION: OPEN message error / Bad Peer AS"


def test_the_reason_shown_is_what_refuses_the_session_now(tmp_path: Path) -> None:
    """A router reconfigured with another AS for this node: Cease / Other Configuration Change takes the
    session down, then every attempt gets Bad Peer AS - that is what the operator must read first."""
    h = Harness(tmp_path)
    h.run(2.0)
    h.exabgp.up.discard(PEER_V4)
    h.feed(f"neighbor {PEER_V4} receive notification code 6 subcode 6 data 0x")
    h.feed(f"neighbor {PEER_V4} down - notification received (6,6)")
    for _ in range(2):
        h.feed(f"neighbor {PEER_V4} connected")
        h.feed(f"neighbor {PEER_V4} receive notification code 2 subcode 2 data 0x0000FDE9")
        h.feed(f"neighbor {PEER_V4} down - notification received (2,2)")
    h.run(1.5)
    session = h.state()["sessions"][PEER_V4]
    assert session["state"] == "down"
    assert session["reason"] == (
        "peer sent NOTIFICATION: OPEN message error / Bad Peer AS; 2 more attempt(s) failed since it went down;"
        " it went down with: peer sent NOTIFICATION: Cease / Other Configuration Change"
    )


# ---- the state


def test_an_unwritable_state_file_is_reported_in_the_published_state(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the state's directory should be")
    h = Harness(tmp_path, state_file=str(tmp_path / "blocked" / "state.json"))
    h.run(1.0)
    state = h.state()
    assert state["state_file_error"].startswith(f"cannot write {tmp_path / 'blocked' / 'state.json'}: ")
    assert state["loops"] > 3 and state["vips"][V4]["state"] == "announced"


def test_the_loop_never_spins_while_exabgp_owes_an_answer(tmp_path: Path) -> None:
    """Waiting for a late answer must not mean waking at once, again and again (a hung ExaBGP = 100 % CPU)."""
    h = Harness(tmp_path)
    h.run(2.0)
    h.exabgp.answering = False
    h.run(1.5)  # a probe is out, and overdue for its successor
    steps = h.steps
    h.run(2.0)
    # ten check rounds and a few timers in 2 s; a wakeup in the past would make it about 2000 (1 ms each)
    assert h.steps - steps < 40, h.steps - steps


def test_a_starting_program_publishes_its_state_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, FakeExabgp(answering=False))
    state = h.state()
    assert state["phase"] == "reconciling" and state["loops"] == 0
    assert state["exabgp"]["reconciled"] == "not yet: waiting for ExaBGP's adj-rib-out"


# ---- publishing the state at scale


def test_a_large_quiet_state_is_republished_every_half_second_and_a_change_at_once(tmp_path: Path) -> None:
    """From QUIET_PUBLISH_VIPS VIPs on, a round that changed nothing but counters republishes at most every
    QUIET_PUBLISH s (readers call a state stale after 2 s); a verdict that changes is published by its round."""
    prefixes = [f"2001:db8:1000::{index:x}/128" for index in range(1, QUIET_PUBLISH_VIPS + 1)]
    h = Harness(tmp_path, vips=[{"prefix": prefix} for prefix in prefixes])
    h.run(INTERVAL * (RISE + 2))
    assert all(v["state"] == "announced" and v["acked"] for v in h.state()["vips"].values())
    published, checks = len(h.published), h.checks
    h.run(3.0)
    quiet_loops = h.checks - checks
    assert quiet_loops >= 14
    assert 3 <= len(h.published) - published <= quiet_loops // 2, "a quiet round republished every loop"
    loops = h.state()["loops"]
    assert h.checks - loops <= QUIET_PUBLISH / INTERVAL + 1, "the published state lags by more than QUIET_PUBLISH"
    h.ok[prefixes[7]] = False
    published = len(h.published)
    h.run(INTERVAL)
    assert len(h.published) > published
    assert h.state()["vips"][prefixes[7]]["last_ok"] is False


def test_a_small_state_is_published_after_every_round(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(1.0)
    published, checks = len(h.published), h.checks
    h.run(2.0)
    assert len(h.published) - published >= h.checks - checks
    assert h.state()["loops"] == h.checks
