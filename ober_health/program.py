"""The health program's decider: the one place that decides routes and writes (ExaBGP lines, the state, sd_notify).

Everything reaches it as an event, handled one at a time in one thread, so a decision and its line are never
split by anything (a SIGTERM is an event too, handled after the line it followed):

    start          READY=1; ask ExaBGP what it announces for us (`show adj-rib out`) and its sessions
    RIB answer     reconcile: a VIP ExaBGP holds starts ANNOUNCED (a respawned process takes over the last
                   one's routes: `fall` bad checks withdraw it, a healthy node does not flap); a prefix ExaBGP
                   holds that the config does not have is withdrawn at once; then the check loop starts
    check round    per VIP: rise/fall hysteresis -> at most one line per change -> state -> WATCHDOG=1
    master exited  HAProxy's master process is gone (ober_health.masterwatch): every VIP withdrawn at once,
                   and any check round that began before it cannot count as good (rise applies as usual)
    ExaBGP line    done/error (the oldest command's answer), session events, `show` replies, shutdown
    tick           probe ExaBGP every PROBE_INTERVAL (`show adj-rib out` + `show neighbor json`); an answer
                   owed for longer than the bound = ExaBGP hung: WATCHDOG=trigger (systemd restarts it)
    SIGTERM/INT,   withdraw every announced VIP, wait (bounded) for the acks, write the state, exit 0
    `shutdown`
    stdin EOF      ExaBGP is gone: exit at once

No I/O of its own beyond what it is given (`write`, `notifier`, `publish`) and no clock but `clock`: the
in-process tests drive it with a fake clock and fake check rounds, in milliseconds.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from ober_health import __version__
from ober_health.checks import CheckResult, CheckRound
from ober_health.config import Config
from ober_health.conversation import Answer, Conversation, Kind
from ober_health.exabgp import (
    SHOW_NEIGHBORS,
    SHOW_RIB,
    Event,
    EventKind,
    announce_line,
    withdraw_line,
    withdraw_prefix_line,
)
from ober_health.machine import Change, Route, VipMachine
from ober_health.masterwatch import MasterExited, MasterWatched
from ober_health.metrics import DurationHistogram
from ober_health.sessions import SessionBook
from ober_health.statefile import STATE_VERSION, ExabgpState, SessionState, State, VipState, encode, write_bytes

log = logging.getLogger("ober-health")

PROBE_INTERVAL = 1.0  # seconds between two probes of ExaBGP (its adj-rib-out and sessions)
MIN_EXABGP_TIMEOUT = 3.0  # the protocol's smallest hold time
CONFIRM_HUNG = 0.5  # a silent ExaBGP is called hung only if still silent this much later (we may be the slow one)
# From this many VIPs on, a quiet check round (no verdict, reason, route, ack or drain changed: only counters
# and timestamps moved) republishes the state at most every QUIET_PUBLISH seconds instead of every loop: at
# 1000 VIPs the 0.3 MB state costs 7-8 ms of CPU to build, encode and write, more than the decisions
# (bench/healthloop.py). Readers call a state stale after max(2 s, 5 intervals).
QUIET_PUBLISH_VIPS = 200
QUIET_PUBLISH = 0.5


class Phase(Enum):
    RECONCILING = "reconciling"  # waiting for ExaBGP's adj-rib-out before deciding anything
    RUNNING = "running"
    STOPPING = "stopping"  # withdraws sent, waiting (bounded) for their acks
    DONE = "done"


class Clock(Protocol):
    def time(self) -> float: ...  # wall clock, for the state file

    def monotonic(self) -> float: ...  # for every deadline (a wall-clock step must not look like a hang)


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class Notifier(Protocol):
    def notify(self, message: str) -> bool: ...


# ---- what the other threads post (the stdin reader posts exabgp.Event itself)


@dataclass(frozen=True)
class CheckDone:
    round: CheckRound


@dataclass(frozen=True)
class Signalled:
    signum: int


@dataclass(frozen=True)
class StdinClosed:
    pass


Input = Event | CheckDone | Signalled | StdinClosed | MasterWatched | MasterExited


@dataclass
class VipCommand:
    """The last command sent for one VIP and how ExaBGP answered it."""

    command: str | None = None
    acked: bool | None = None
    seq: int = 0


class HealthProgram:
    def __init__(
        self,
        config: Config,
        write: Callable[[bytes], object],
        notifier: Notifier,
        clock: Clock | None = None,
        publish: Callable[[bytes], None] | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = str(config_path.resolve()) if config_path is not None else ""
        self.health = config.health
        self.clock = clock or SystemClock()
        self._write = write
        self.notifier = notifier
        self._publish = publish or (lambda data: None)
        self.vips = {vip.prefix: vip for vip in config.vips}
        self.machines = {vip.prefix: VipMachine(rise=self.health.rise, fall=self.health.fall) for vip in config.vips}
        self.commands = {vip.prefix: VipCommand() for vip in config.vips}
        self.failures: dict[str, dict[str, int]] = {vip.prefix: {} for vip in config.vips}  # by cause
        self.durations = DurationHistogram()
        self.held: dict[str, set[str]] = {}  # ExaBGP's adj-rib-out at the last read: prefix -> peers
        self.sessions = SessionBook.from_peers(config.peers)
        self.conversation = Conversation()
        self.phase = Phase.RECONCILING
        self.started_at = self.clock.time()
        self.loops = 0
        self.drain_reason = ""
        self.drain_problems: tuple[str, ...] = ()
        self.round_started_at: float | None = None
        self.next_check_at = 0.0
        self.check_in_flight = False
        self.next_probe_at = 0.0
        self.hung = ""  # why ExaBGP counts as hung ("" while it answers)
        self.silent_since: float | None = None  # first tick that found an answer overdue
        self.exabgp_stopping = False  # ExaBGP said `shutdown`: it reads no more commands, expect no acks
        self.stop_deadline = 0.0
        self.state_file_error = ""
        self.published_at: float | None = None  # monotonic, the last publish
        self.dirty = False  # something changed since the last publish that a quiet round would not show
        self.rib_read_at: float | None = None
        self.master_exited_at: float | None = None  # monotonic: a round begun before it saw a live HAProxy
        self.reconciled = "not yet: waiting for ExaBGP's adj-rib-out"

    # ---- the driver's view
    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE

    def start(self) -> None:
        # no MAINPID: ExaBGP, our parent, is the unit's main process (NotifyAccess=all lets us speak for it)
        self.notifier.notify(f"READY=1\nSTATUS=reading ExaBGP's adj-rib-out ({len(self.machines)} VIP(s))")
        self._probe()
        self.publish()  # `ober status` sees a starting program (phase reconciling), not a stale predecessor

    def check_due(self) -> bool:
        return self.phase is Phase.RUNNING and not self.check_in_flight and self.clock.monotonic() >= self.next_check_at

    def check_started(self) -> None:
        self.check_in_flight = True

    def next_wakeup(self) -> float:
        """The monotonic time by which `tick` must run again (the driver waits for events until then)."""
        now = self.clock.monotonic()
        wakeups = [now + 1.0]
        if self.phase is Phase.RUNNING and not self.check_in_flight:
            wakeups.append(self.next_check_at)
        if self.phase in (Phase.RECONCILING, Phase.RUNNING):
            if not self.conversation.outstanding(Kind.SHOW_RIB):  # else the answer is what we wait for
                wakeups.append(self.next_probe_at)
            oldest = self.conversation.oldest_age(now)
            if oldest is not None and not self.hung:
                overdue = now - oldest + self.exabgp_timeout()
                wakeups.append(overdue if self.silent_since is None else self.silent_since + CONFIRM_HUNG)
        if self.phase is Phase.STOPPING:
            wakeups.append(self.stop_deadline)
        return min(wakeups)

    def handle(self, item: Input) -> None:
        if isinstance(item, CheckDone):
            self.on_check(item.round)
        elif isinstance(item, Signalled):
            self.begin_stop(f"{signal.Signals(item.signum).name} received")
        elif isinstance(item, MasterExited):
            self.on_master_exited(item.pid)
        elif isinstance(item, MasterWatched):
            log.info("watching HAProxy's master (pid %d): its exit withdraws every VIP at once", item.pid)
        elif isinstance(item, StdinClosed):
            log.warning("stdin closed: ExaBGP is gone, exiting")
            self.phase = Phase.DONE
        else:
            self.on_line(item)
        self.tick()

    def tick(self) -> None:
        """Timers: the probe, ExaBGP's liveness, the end of a stop."""
        now = self.clock.monotonic()
        if self.phase is Phase.STOPPING:
            self._maybe_finish()
            return
        if self.phase is Phase.DONE:
            return
        if now >= self.next_probe_at and not self.conversation.outstanding(Kind.SHOW_RIB):
            self._probe()
        self._judge_liveness(now)

    # ---- ExaBGP
    def exabgp_timeout(self) -> float:
        """How long ExaBGP may owe an answer before it counts as hung: the sessions' negotiated hold time
        (or the configured one). ExaBGP sends its keepalives from the loop that answers us, so an ExaBGP
        silent for that long has lost its sessions anyway: the bound never fires on a slow but working
        ExaBGP, however loaded the machine."""
        hold = self.sessions.negotiated_hold_time() or self.config.hold_time
        return max(MIN_EXABGP_TIMEOUT, float(hold))

    def _judge_liveness(self, now: float) -> None:
        oldest = self.conversation.oldest_age(now)
        if oldest is None or oldest <= self.exabgp_timeout() or self.exabgp_stopping:
            self.silent_since = None
            return
        if self.hung:
            return
        if self.silent_since is None:
            self.silent_since = now  # confirm on a later tick: this process may have been the one starved
            return
        if now - self.silent_since < CONFIRM_HUNG:
            return
        command = self.conversation.pending[0]
        self.hung = (
            f"ExaBGP has not answered `{command.line}` for {oldest:.1f}s (bound {self.exabgp_timeout():g}s, the"
            " hold time: its sessions are gone by now)"
        )
        log.error("%s: asking systemd to restart it (WATCHDOG=trigger)", self.hung)
        self.notifier.notify(f"WATCHDOG=trigger\nSTATUS={self.hung}")
        self.publish()

    def _probe(self) -> None:
        self._send(Kind.SHOW_RIB, SHOW_RIB)
        self._send(Kind.SHOW_NEIGHBORS, SHOW_NEIGHBORS)
        self.next_probe_at = self.clock.monotonic() + PROBE_INTERVAL

    def _send(self, kind: Kind, line: str, prefix: str = "") -> int:
        command = self.conversation.sent(kind, line, self.clock.monotonic(), prefix)
        self._write(line.encode() + b"\n")  # one write(2) of less than PIPE_BUF: atomic on the pipe
        return command.seq

    def on_line(self, event: Event) -> None:
        now = self.clock.time()
        kind = event.kind
        if kind in (EventKind.DONE, EventKind.ERROR):
            answer = self.conversation.answer(kind is EventKind.DONE)
            if answer is None:
                said = event.text or "done"
                log.warning("ExaBGP answered %r with no command waiting (for a previous process?)", said)
            else:
                self._answered(answer, now)
        elif kind in (EventKind.RIB_ROUTE, EventKind.NEIGHBOR_TABLE):
            if not self.conversation.reply_line(event):
                log.debug("reply line with no `show` waiting: %s", event.text[:200])
        elif kind in (
            EventKind.NEIGHBOR_UP,
            EventKind.NEIGHBOR_DOWN,
            EventKind.NEIGHBOR_CONNECTED,
            EventKind.NOTIFICATION,
        ):
            self.sessions.on_event(event, now)
        elif kind is EventKind.SHUTDOWN:
            log.info("ExaBGP is shutting down")
            self.exabgp_stopping = True
            self.begin_stop("ExaBGP shutting down")

    def _answered(self, answer: Answer, now: float) -> None:
        command = answer.command
        if self.hung and (self.conversation.oldest_age(self.clock.monotonic()) or 0.0) <= self.exabgp_timeout():
            log.warning("ExaBGP answers again")
            self.hung = ""
        self.silent_since = None
        if command.kind in (Kind.ANNOUNCE, Kind.WITHDRAW):
            record = self.commands.get(command.prefix)
            if record is not None and record.seq == command.seq:
                record.acked = answer.ok
                self.dirty = True
            if not answer.ok:
                log.error("ExaBGP rejected `%s`", command.line)
        elif command.kind is Kind.SHOW_NEIGHBORS:
            for reply in command.replies:
                self.sessions.on_table(reply.peers, now)
        elif command.kind is Kind.SHOW_RIB:
            if answer.ok:
                held: dict[str, set[str]] = {}
                for reply in command.replies:
                    held.setdefault(reply.prefix, set()).add(reply.neighbor)
                self.held, self.rib_read_at = held, now
                if self.phase is Phase.RECONCILING:
                    self._reconcile(held, now)
                elif self.phase is Phase.RUNNING:
                    self._compare(held, command.seq, now)
            elif self.phase is Phase.RECONCILING:
                self._fallback(now)
            else:
                log.error("ExaBGP could not show its adj-rib-out (`error`)")
        if self.phase is Phase.STOPPING:
            self._maybe_finish()

    # ---- reconciliation with what ExaBGP holds
    def _reconcile(self, held: dict[str, set[str]], now: float) -> None:
        adopted = [prefix for prefix in self.machines if prefix in held]
        for prefix in adopted:
            self.machines[prefix].adopt(Route.ANNOUNCED, now)
            self.commands[prefix].acked = True  # ExaBGP's adj-rib-out is its answer
            log.warning(
                "%s: ExaBGP announces it (left by the previous health program): taken as announced;"
                " %d bad checks withdraw it",
                prefix,
                self.health.fall,
            )
        stale = self._withdraw_unknown(held)
        self.reconciled = (
            f"ExaBGP's adj-rib-out held {len(adopted)} of {len(self.machines)} VIP(s)"
            + (f" ({', '.join(adopted)}), taken as announced" if adopted else "")
            + (f"; withdrew {len(stale)} prefix(es) not in the config ({', '.join(stale)})" if stale else "")
        )
        log.info("started: %s", self.reconciled)
        self._run()

    def _fallback(self, now: float) -> None:
        """No adj-rib-out to read: withdraw every VIP, so that nothing the last process left stays announced."""
        for prefix in self.machines:
            self._apply(prefix, Change.WITHDRAW, "ExaBGP could not show its adj-rib-out: every VIP withdrawn")
        self.reconciled = "ExaBGP answered `error` to `show adj-rib out`: every VIP withdrawn at start"
        log.error("%s", self.reconciled)
        self._run()

    def _run(self) -> None:
        self.phase = Phase.RUNNING
        self.next_check_at = self.clock.monotonic()
        self.notifier.notify(f"STATUS=checking {len(self.machines)} VIP(s)")

    def _compare(self, held: dict[str, set[str]], seq: int, now: float) -> None:
        """A periodic read: where ExaBGP and this process disagree, ExaBGP is what the routers see."""
        for prefix, machine in self.machines.items():
            if self.commands[prefix].seq > seq:
                continue  # a command sent after the `show`: ExaBGP's answer predates it
            if prefix in held and machine.route is Route.WITHDRAWN:
                log.warning(
                    "%s: ExaBGP announces it although this process did not: taken as announced;"
                    " %d bad checks withdraw it",
                    prefix,
                    self.health.fall,
                )
                machine.adopt(Route.ANNOUNCED, now)
                self.commands[prefix].acked = True
            elif prefix not in held and machine.route is Route.ANNOUNCED:
                log.warning(
                    "%s: ExaBGP does not announce it although this process did: taken as withdrawn;"
                    " announced again after %d good checks",
                    prefix,
                    self.health.rise,
                )
                machine.adopt(Route.WITHDRAWN, now)
        self._withdraw_unknown(held)

    def _withdraw_unknown(self, held: dict[str, set[str]]) -> list[str]:
        stale = sorted(prefix for prefix in held if prefix not in self.machines)
        for prefix in stale:
            log.warning("%s: ExaBGP announces it but health.toml has no such VIP: withdrawn", prefix)
            self._send(Kind.WITHDRAW, withdraw_prefix_line(prefix, sorted(held[prefix])), prefix)
        return stale

    # ---- the check loop
    def on_check(self, checks: CheckRound) -> None:
        self.check_in_flight = False
        self.next_check_at = checks.started + self.health.interval
        if self.phase is not Phase.RUNNING:
            return
        now = self.clock.time()
        changed = self.dirty or checks.drain_problems != self.drain_problems
        if checks.drain != self.drain_reason:
            log.warning("%s", checks.drain or "drain ended: normal checks resume")
            self.drain_reason = checks.drain
            changed = True
        for problem in checks.drain_problems:
            if problem not in self.drain_problems:
                log.error("%s", problem)
        self.drain_problems = checks.drain_problems
        # a round begun before HAProxy's master exited may have seen it alive: its good results count nothing
        stale = self.master_exited_at is not None and checks.started < self.master_exited_at
        if checks.duration is not None:
            self.durations.observe(checks.duration)
        for prefix, machine in self.machines.items():
            result = checks.results.get(prefix) or CheckResult(False, "not checked", code="not_checked")
            if not result.ok and result.known:
                failures = self.failures[prefix]
                failures[result.code or "other"] = failures.get(result.code or "other", 0) + 1
            before = (machine.last_ok, machine.last_reason)
            change = machine.observe(
                result.ok,
                result.reason,
                now,
                drained=bool(checks.drain),
                known=result.known and not (stale and result.ok),
                decisive=result.decisive,
            )
            if change is not None:
                changed = True
                self._apply(prefix, change, checks.drain or self._why(machine, result))
            elif before != (machine.last_ok, machine.last_reason):
                changed = True
        self.loops += 1
        self.round_started_at = checks.started_at
        mono = self.clock.monotonic()
        if (
            changed
            or len(self.machines) < QUIET_PUBLISH_VIPS
            or self.published_at is None
            or mono - self.published_at >= QUIET_PUBLISH
        ):
            self.publish()
        if not self.hung:
            self.notifier.notify("WATCHDOG=1")

    def on_master_exited(self, pid: int) -> None:
        """HAProxy's master exited: nothing is left to serve, so every announced VIP goes now, without
        waiting for `fall` failed checks (a reload keeps the master: it never comes here)."""
        self.master_exited_at = self.clock.monotonic()
        reason = f"HAProxy's master (pid {pid}) exited"
        if self.phase is Phase.RUNNING:
            now = self.clock.time()
            for prefix, machine in self.machines.items():  # the lines first: every millisecond counts here
                change = machine.observe(False, reason, now, drained=bool(self.drain_reason), decisive=True)
                if change is not None:
                    self._apply(prefix, change, self.drain_reason or reason)
        # reconciling: the first check round (refused) decides; stopping: every VIP is withdrawn already
        log.warning("%s", reason)
        self.publish()

    def _apply(self, prefix: str, change: Change, why: str) -> None:
        vip = self.vips[prefix]
        peers = self.config.peers_of(6 if vip.is_ipv6 else 4)
        if change is Change.ANNOUNCE:
            seq = self._send(Kind.ANNOUNCE, announce_line(vip, peers), prefix)
            log.info("%s announced: %s", prefix, why)
        else:
            seq = self._send(Kind.WITHDRAW, withdraw_line(vip, peers), prefix)
            log.warning("%s withdrawn: %s", prefix, why)
        self.commands[prefix] = VipCommand(change.value, None, seq)

    def _why(self, machine: VipMachine, result: CheckResult) -> str:
        if machine.route is Route.ANNOUNCED:
            return f"{machine.good_streak}/{self.health.rise} good checks, last: {result.reason}"
        return f"{machine.bad_streak}/{self.health.fall} bad checks, last: {result.reason}"

    # ---- stopping
    def begin_stop(self, why: str) -> None:
        """Withdraw every announced VIP (every VIP, if ExaBGP's adj-rib-out was not read yet), then wait a
        bounded time for ExaBGP's acks: it SIGKILLs us 2 s after its SIGTERM."""
        if self.phase in (Phase.STOPPING, Phase.DONE):
            return  # the second SIGTERM of `systemctl stop` (the unit's, then ExaBGP's)
        unknown = self.phase is Phase.RECONCILING
        self.phase = Phase.STOPPING
        now = self.clock.time()
        for prefix, machine in self.machines.items():  # in config order
            if machine.force_withdrawn(now) is not None or unknown:
                self._apply(prefix, Change.WITHDRAW, why)
        timeout = 0.0 if self.exabgp_stopping else self.health.shutdown_ack_timeout
        self.stop_deadline = self.clock.monotonic() + timeout
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        waiting = [c for c in self.conversation.pending if c.kind is Kind.WITHDRAW]
        if waiting and self.clock.monotonic() < self.stop_deadline:
            return
        if waiting and not self.exabgp_stopping:
            log.warning("ExaBGP did not acknowledge every withdraw in %.1fs", self.health.shutdown_ack_timeout)
        self.publish()
        self.phase = Phase.DONE

    # ---- the state
    def state(self) -> State:
        mono = self.clock.monotonic()
        oldest = self.conversation.oldest_age(mono)
        vips: dict[str, VipState] = {}
        for prefix, machine in self.machines.items():
            record = self.commands[prefix]
            vips[prefix] = VipState(
                state="announced" if machine.route is Route.ANNOUNCED else "withdrawn",
                since=machine.since or None,
                last_ok=machine.last_ok,
                reason=machine.last_reason,
                checked_at=machine.last_checked or None,
                good_streak=machine.good_streak,
                bad_streak=machine.bad_streak,
                announces=machine.announces,
                withdraws=machine.withdraws,
                command=record.command,
                acked=record.acked,
                held_by=sorted(self.held.get(prefix, ())),
                failures=dict(self.failures[prefix]),
            )
        sessions = {
            address: SessionState(
                state=session.state,
                since=session.since,
                reason=session.reason,
                asn=session.asn,
                configured=session.configured,
                family=session.version,
            )
            for address, session in self.sessions.sessions.items()
        }
        return State(
            version=STATE_VERSION,
            program=f"ober-health {__version__}",
            pid=os.getpid(),
            config=self.config_path,
            started_at=self.started_at,
            updated_at=self.clock.time(),
            round_started_at=self.round_started_at,
            interval=self.health.interval,
            loops=self.loops,
            phase=self.phase.value,
            drained=bool(self.drain_reason),
            drain_reason=self.drain_reason,
            stopping=self.phase in (Phase.STOPPING, Phase.DONE),
            state_file_error=self.state_file_error,
            exabgp=ExabgpState(
                answering=not self.hung,
                problem=self.hung,
                unanswered=len(self.conversation.pending),
                oldest_unanswered=round(oldest, 3) if oldest is not None else None,
                timeout=self.exabgp_timeout(),
                rib_read_at=self.rib_read_at,
                reconciled=self.reconciled,
            ),
            sessions=sessions,
            vips=vips,
            checks=self.durations.as_state(),
        )

    def publish(self) -> None:
        """The state to the status endpoint and the state file; a file that cannot be written is reported in
        the state itself (which the endpoint still serves) and logged once per distinct error.

        Encoded once per loop (at 1000 VIPs the state is 0.3 MB; building and encoding it is most of the
        loop's CPU: bench/healthloop.py), again only when the file's error changes."""
        self.published_at, self.dirty = self.clock.monotonic(), False
        data = encode(self.state())
        try:
            write_bytes(Path(self.health.state_file), data)
        except OSError as exc:
            error = f"cannot write {self.health.state_file}: {exc.strerror or exc}"
            if error != self.state_file_error:
                log.error("%s (`ober status` reads the status endpoint instead)", error)
                self.state_file_error = error
                data = encode(self.state())
        else:
            if self.state_file_error:
                log.info("state file %s written again", self.health.state_file)
                self.state_file_error = ""
                data = encode(self.state())
        self._publish(data)
