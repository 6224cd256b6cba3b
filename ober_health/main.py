"""`ober-health`: ExaBGP's API process. It checks HAProxy and decides this node's routes.

ExaBGP starts us (`process ... { run ober-health; encoder text; }`), reads commands from our stdout and
answers on our stdin. One thread decides and writes (ober_health.program: the lines, the state, sd_notify);
the others only post events to its queue:

    stdin reader     ExaBGP's lines, parsed (acks, session events, `show` replies, shutdown), then EOF
    checker          one check round at a time, when the decider asks (a hung HAProxy blocks only this thread)
    signal handler   SIGTERM/SIGINT as an event (queue.SimpleQueue.put: reentrant, takes no lock)
    master watch     HAProxy's master exiting (a pidfd: ober_health.masterwatch), unless watch_haproxy = false
    status endpoint  serves the last published state on loopback, as JSON and as Prometheus metrics

Exits: stdin EOF (ExaBGP is gone: exit at once); SIGTERM/SIGINT/`shutdown` from ExaBGP (withdraw every
announced VIP, wait a bounded time for the acks, exit 0 - ExaBGP SIGKILLs us 2 s later).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from ober_health import __version__
from ober_health.checks import CheckRound, StatsCache, crashed, run_checks
from ober_health.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from ober_health.endpoint import start_endpoint
from ober_health.exabgp import EventKind, parse_line
from ober_health.masterwatch import MasterExited, MasterWatch, MasterWatched
from ober_health.metrics import certificate_expiries
from ober_health.paths import PATHS
from ober_health.program import CheckDone, HealthProgram, Input, Signalled, StdinClosed
from ober_health.sdnotify import Notifier

log = logging.getLogger("ober-health")

Events = queue.SimpleQueue[Input]


def read_stdin(events: Events, fd: int = 0, pending: bytes = b"") -> None:
    """Parse ExaBGP's lines and post them, for ever (ExaBGP blocks writing to us otherwise); EOF posts
    StdinClosed. Raw `os.read`, not `sys.stdin`: a daemon thread blocked inside a buffered reader holds its
    lock and makes the interpreter abort at exit."""
    while chunk := os.read(fd, 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            event = parse_line(raw.decode(errors="replace"))
            if event is not None:
                events.put(event)
    events.put(StdinClosed())


def stale_answers(events: Events, fd: int = 0) -> bytes:
    """Before our first command: what ExaBGP already wrote to us. A `done`/`error` there answers a command of
    the process we replace (ExaBGP ran it after that one died) and must not be taken for an answer to ours;
    anything else (a session event) is posted. Returns a partial last line for the reader to complete."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    data = b""
    closed = False
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    *lines, rest = data.split(b"\n")
    for raw in lines:
        event = parse_line(raw.decode(errors="replace"))
        if event is None:
            continue
        if event.kind in (EventKind.DONE, EventKind.ERROR):
            log.info("ignored %r: an answer to the previous health program's command", event.text or "done")
        else:
            events.put(event)
    if closed:
        events.put(StdinClosed())
    return rest


class Checker:
    """Runs one check round at a time in its own thread, when asked; posts the result."""

    def __init__(self, config: Config, events: Events) -> None:
        self.config = config
        self.events = events
        self.requests: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.stats = StatsCache()  # at scale, one read of HAProxy's servers serves two loops
        self.thread = threading.Thread(target=self._run, name="checker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def request(self) -> None:
        self.requests.put(None)

    def _run(self) -> None:
        while True:
            self.requests.get()
            started = time.monotonic()
            try:
                checks = run_checks(self.config, started, self.stats)
            except Exception as exc:  # a check that crashes is a failed check, never a dead checker
                log.exception("check round failed")
                failed = crashed(exc)
                checks = CheckRound(started, time.time(), "", (), {vip.prefix: failed for vip in self.config.vips})
            self.events.put(CheckDone(checks))


def serve(program: HealthProgram, events: Events, checker: Checker) -> None:
    """The decider's loop: wait for the next event or timer, hand it to the program, until it is done."""
    program.start()
    while not program.finished:
        if program.check_due():
            program.check_started()
            checker.request()
        timeout = max(0.0, program.next_wakeup() - time.monotonic())
        try:
            item: Input | None = events.get(timeout=timeout)
        except queue.Empty:
            item = None
        if item is None:
            program.tick()
        else:
            program.handle(item)


def _install_signal_handlers(events: Events) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        events.put(Signalled(signum))  # SimpleQueue.put is reentrant (C, no lock taken): safe in a handler

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _write_stdout(data: bytes) -> None:
    os.write(1, data)


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
        peers = f", {len(config.peers)} peer(s)" if config.peers else ""
        print(f"{args.config}: OK ({len(config.vips)} VIP(s){peers})")
        return 0
    # a thread woken by an event (HAProxy's master exiting) waits for the interpreter lock up to this long while
    # another thread computes: 1 ms instead of Python's 5, two hand-offs (watcher, decider) before the line
    sys.setswitchinterval(0.001)
    events: Events = queue.SimpleQueue()
    _install_signal_handlers(events)
    rest = stale_answers(events)
    threading.Thread(target=read_stdin, args=(events, 0, rest), name="stdin", daemon=True).start()
    endpoint = start_endpoint(config.health.status_listen, lambda: certificate_expiries(PATHS.public_certs_dir))
    program = HealthProgram(
        config,
        _write_stdout,
        Notifier(),
        publish=endpoint.publish if endpoint is not None else None,
        config_path=args.config,
    )
    checker = Checker(config, events)
    checker.start()
    if config.health.watch_haproxy:
        health = config.health

        def post(event: MasterWatched | MasterExited) -> None:
            if isinstance(event, MasterExited):
                checker.stats.forget()  # the next round reads the new HAProxy's servers
            events.put(event)

        MasterWatch(health.stats_socket, post, retry=health.interval, timeout=health.timeout).start()
    log.info(
        "started: %d VIP(s), %d peer(s), interval %gs, rise %d, fall %d%s",
        len(config.vips),
        len(config.peers),
        config.health.interval,
        config.health.rise,
        config.health.fall,
        f", status on http://{endpoint.address}/state" if endpoint is not None else "",
    )
    try:
        serve(program, events, checker)
    except BrokenPipeError:
        log.warning("stdout closed: ExaBGP is gone, exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
