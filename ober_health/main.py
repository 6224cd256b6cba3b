"""`ober-health`: ExaBGP's API process. It checks HAProxy and decides this node's routes.

ExaBGP starts us (`process ... { run ober-health; encoder text; }`), reads `announce`/`withdraw` lines from
our stdout and answers `done`/`error` on our stdin. The loop, every `interval`:

    drained?  (maintenance or drain file)  -> every VIP withdrawn at once
    HAProxy health URL 200 within timeout  -> else every VIP counts one bad check
    `show stat`: enough UP servers per VIP's backend
    -> per VIP: rise/fall hysteresis -> at most one line per change -> state file -> WATCHDOG=1

Exits: stdin EOF (ExaBGP is gone: exit at once, nothing to talk to); SIGTERM/SIGINT/`shutdown` from ExaBGP
(withdraw every announced VIP, wait a bounded time for the acks, exit 0 - ExaBGP SIGKILLs us 2 s later).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from ober_health import __version__
from ober_health.checks import CheckResult, check_backend, check_http, read_stats
from ober_health.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from ober_health.exabgp import EventKind, announce_line, parse_line, withdraw_line
from ober_health.machine import Change, Route, VipMachine
from ober_health.sdnotify import Notifier
from ober_health.statefile import STATE_VERSION, write_state

log = logging.getLogger("ober-health")


class AckTracker:
    """Counts lines sent to ExaBGP that it has not yet answered with `done`/`error`.

    Reentrant lock: the SIGTERM handler runs in the main thread and may interrupt it while it holds the lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self.pending = 0
        self.errors = 0

    def sent(self) -> None:
        with self._cond:
            self.pending += 1

    def answered(self, error: bool) -> None:
        with self._cond:
            self.pending = max(0, self.pending - 1)
            self.errors += int(error)
            self._cond.notify_all()

    def wait_all(self, timeout: float) -> bool:
        """True when every sent line was answered within `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.pending == 0, timeout=timeout)


class HealthProgram:
    """One node's health loop; owns the VIP machines and everything written to ExaBGP."""

    def __init__(
        self,
        config: Config,
        write: Callable[[bytes], object] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.health = config.health
        self._write = write or (lambda data: os.write(1, data))
        self.notifier = notifier or Notifier()
        self.acks = AckTracker()
        self.vips = {vip.prefix: vip for vip in config.vips}
        self.machines = {vip.prefix: VipMachine(rise=self.health.rise, fall=self.health.fall) for vip in config.vips}
        self.session = requests.Session()
        self.session.trust_env = False  # never send the health probe through an http_proxy
        self.started_at = time.time()
        self.loops = 0
        self.drain_reason = ""
        self.stopping = False
        self.exabgp_stopping = False  # ExaBGP said `shutdown`: it reads no more commands, expect no acks
        # Prefixes ExaBGP may be announcing: a superset at every instant (added before an announce is
        # written, removed after a withdraw is), so a signal between a decision and its line still withdraws.
        self.advertised: set[str] = set()

    # ---- output
    def emit(self, line: str) -> None:
        """One line to ExaBGP in one write(2): atomic on a pipe, safe from the signal handler too."""
        self.acks.sent()
        self._write(line.encode() + b"\n")

    def apply(self, prefix: str, change: Change, reason: str) -> None:
        vip = self.vips[prefix]
        if change is Change.ANNOUNCE:
            self.advertised.add(prefix)
            self.emit(announce_line(vip))
            log.info("%s announced: %s", prefix, reason)
        else:
            self.emit(withdraw_line(vip))
            self.advertised.discard(prefix)
            log.warning("%s withdrawn: %s", prefix, reason)

    # ---- checks
    def current_drain(self) -> str:
        """Why every VIP must be down now ("" when not drained)."""
        for path, what in (
            (self.health.maintenance_file, "maintenance"),
            (self.health.drain_file, "drain (service stopping)"),
        ):
            if os.path.exists(path):
                return f"{what}: {path} present"
        return ""

    def check(self) -> dict[str, CheckResult]:
        """One result per VIP from one HTTP check and at most one `show stat`."""
        http = check_http(self.session, self.health.haproxy_url, self.health.timeout)
        if not http.ok:
            # a dead or hung HAProxy fails every VIP; asking its stats socket would only cost another timeout
            return {vip.prefix: http for vip in self.config.vips}
        rows, stats_error = None, ""
        if any(vip.backend for vip in self.config.vips):
            rows, stats_error = read_stats(self.health.stats_socket, self.health.timeout)
        return {vip.prefix: check_backend(rows, stats_error, vip) for vip in self.config.vips}

    def run_once(self) -> None:
        """One loop: check, decide, emit changes, write the state file, ping the watchdog."""
        drain = self.current_drain()
        if drain != self.drain_reason:
            log.warning("%s", drain or "drain ended: normal checks resume")
            self.drain_reason = drain
        results = self.check()
        now = time.time()
        for prefix, machine in self.machines.items():
            result = results[prefix]
            change = machine.observe(result.ok, result.reason, now, drained=bool(drain))
            if change is not None and not self.stopping:
                why = drain or self._why(machine, result)
                self.apply(prefix, change, why)
        self.loops += 1
        self.write_state()
        self.notifier.notify("WATCHDOG=1")

    def _why(self, machine: VipMachine, result: CheckResult) -> str:
        if machine.route is Route.ANNOUNCED:
            return f"{machine.good_streak}/{self.health.rise} good checks, last: {result.reason}"
        return f"{machine.bad_streak}/{self.health.fall} bad checks, last: {result.reason}"

    # ---- state
    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "program": f"ober-health {__version__}",
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": time.time(),
            "interval": self.health.interval,
            "loops": self.loops,
            "drained": bool(self.drain_reason),
            "drain_reason": self.drain_reason,
            "stopping": self.stopping,
            "vips": {
                prefix: {
                    "state": machine.route.value,
                    "since": machine.since or None,
                    "last_ok": machine.last_ok,
                    "reason": machine.last_reason,
                    "checked_at": machine.last_checked or None,
                    "good_streak": machine.good_streak,
                    "bad_streak": machine.bad_streak,
                    "announces": machine.announces,
                    "withdraws": machine.withdraws,
                }
                for prefix, machine in self.machines.items()
            },
        }

    def write_state(self) -> None:
        try:
            write_state(Path(self.health.state_file), self.state())
        except OSError as exc:
            log.error("cannot write state file %s: %s", self.health.state_file, exc)

    # ---- input from ExaBGP
    def handle_line(self, raw: bytes) -> None:
        event = parse_line(raw.decode(errors="replace"))
        if event is None:
            return
        if event.kind is EventKind.DONE:
            self.acks.answered(error=False)
        elif event.kind is EventKind.ERROR:
            self.acks.answered(error=True)
            log.error("ExaBGP rejected a command: %s", event.text)
        elif event.kind is EventKind.NEIGHBOR_UP:
            log.info("BGP session with %s up", event.neighbor)
        elif event.kind is EventKind.NEIGHBOR_DOWN:
            log.warning("BGP session with %s down: %s", event.neighbor, event.text)
        elif event.kind is EventKind.SHUTDOWN:
            log.info("ExaBGP is shutting down")
            self.exabgp_stopping = True
            self.stopping = True

    def read_stdin(self, fd: int = 0) -> None:
        """Drain ExaBGP's replies for ever (it blocks writing them otherwise); EOF: ExaBGP is gone.

        Raw `os.read`, not `sys.stdin`: a daemon thread blocked inside a buffered reader holds its lock and
        makes the interpreter abort at exit.
        """
        pending = b""
        while chunk := os.read(fd, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                try:
                    self.handle_line(raw)
                except Exception:  # a bad line must never stop the reader: ExaBGP would block on us
                    log.exception("could not handle line from ExaBGP: %r", raw[:200])
        log.warning("stdin closed: ExaBGP is gone, exiting")
        os._exit(0)

    # ---- lifecycle
    def shutdown(self, why: str) -> None:
        """Withdraw every announced VIP, wait (bounded) for ExaBGP's acks, record the state."""
        self.stopping = True
        now = time.time()
        for machine in self.machines.values():
            machine.force_withdrawn(now)
        for prefix in [p for p in self.vips if p in self.advertised]:  # in config order
            self.emit(withdraw_line(self.vips[prefix]))
            self.advertised.discard(prefix)
            log.warning("%s withdrawn: %s", prefix, why)
        ack_timeout = 0.0 if self.exabgp_stopping else self.health.shutdown_ack_timeout
        if not self.acks.wait_all(ack_timeout) and ack_timeout:
            log.warning("ExaBGP did not acknowledge every withdraw in %.1fs", self.health.shutdown_ack_timeout)
        self.write_state()

    def run(self, stop: threading.Event) -> None:
        # no MAINPID: ExaBGP, our parent, is the unit's main process (NotifyAccess=all lets us speak for it)
        self.notifier.notify(f"READY=1\nSTATUS=checking {len(self.machines)} VIP(s)")
        while not stop.is_set() and not self.stopping:
            started = time.monotonic()
            self.run_once()
            stop.wait(max(0.0, self.health.interval - (time.monotonic() - started)))


def _install_signal_handlers(program: HealthProgram) -> None:
    handled = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal handled
        if handled:  # the second SIGTERM of `systemctl stop` (the unit's, then ExaBGP's)
            return
        handled = True
        # withdraw from inside the handler: the main thread may be blocked in a check for `timeout`,
        # and ExaBGP SIGKILLs us 2 s after SIGTERM. No threading.Event.set() here: the handler runs in
        # the main thread, which may hold that Event's (non-reentrant) lock inside stop.wait() -> deadlock.
        # SystemExit ends the loop instead.
        program.shutdown(f"{signal.Signals(signum).name} received")
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ober-health",
        description="ExaBGP API process: announce this node's VIPs while HAProxy and its backends are healthy.",
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="TOML config (%(default)s)")
    parser.add_argument("--check", action="store_true", help="only validate the config; exit 0 or 1")
    parser.add_argument("--version", action="version", version=f"ober-health {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="ober-health[%(process)d]: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"ober-health: {args.config}: {error}", file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: OK ({len(config.vips)} VIP(s))")
        return 0
    program = HealthProgram(config)
    stop = threading.Event()
    _install_signal_handlers(program)
    reader = threading.Thread(target=program.read_stdin, daemon=True)
    reader.start()
    log.info(
        "started: %d VIP(s), interval %gs, rise %d, fall %d",
        len(config.vips),
        config.health.interval,
        config.health.rise,
        config.health.fall,
    )
    try:
        program.run(stop)
        if program.stopping:  # `shutdown` from ExaBGP: SIGTERM follows; withdraw now anyway
            program.shutdown("ExaBGP shutting down")
    except SystemExit:
        pass
    except BrokenPipeError:
        log.warning("stdout closed: ExaBGP is gone, exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
