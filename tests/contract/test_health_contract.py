"""`ober-health` as a black box, driven the way ExaBGP drives it.

The test is ExaBGP: it starts the program with pipes, reads `announce`/`withdraw` lines from its stdout,
answers `done` (or `error`) on its stdin, sends it neighbor events and garbage, SIGTERMs it, closes its
stdin. HAProxy's health URL is a small HTTP server in this process that answers what the test says, and
systemd's notify socket is a datagram socket the test binds. Nothing here reads the program's internals:
only its pipes, its exit code, its notify messages, its state file and the `ober` CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
V4, V6 = "203.0.113.10/32", "2001:db8:203::10/128"
ANNOUNCE_V4 = "announce route 203.0.113.10/32 next-hop self med 100 community [65000:100]"
ANNOUNCE_V6 = "announce route 2001:db8:203::10/128 next-hop self"
WITHDRAW_V4 = "withdraw route 203.0.113.10/32 next-hop self"
WITHDRAW_V6 = "withdraw route 2001:db8:203::10/128 next-hop self"
INTERVAL = 0.1
RISE, FALL = 3, 2
QUIET = 0.6  # six loops without a line: "nothing changes, nothing is said"


def _console_script(name: str, module: str) -> list[str]:
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


OBER_HEALTH = _console_script("ober-health", "ober_health.main")
OBER = _console_script("ober", "ober_health.cli")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


# ---- HAProxy's health URL, as the test wants it


class HealthServer:
    """Answers every GET with `status` (200 or 503), or not at all while `hang` is set."""

    def __init__(self) -> None:
        self.status = 200
        self.hang = threading.Event()
        self.hung = 0  # requests received while `hang` was set
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if owner.hang.is_set():
                    owner.hung += 1
                    owner.release.wait(10)
                    return
                body = b"ok\n" if owner.status == 200 else b"down\n"
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[HealthServer]:
    server = HealthServer()
    try:
        yield server
    finally:
        server.close()


# ---- systemd's notify socket


class NotifySocket:
    def __init__(self) -> None:
        # a short directory of its own: a unix socket path must fit in 108 bytes, pytest's tmp_path may not
        self.directory = tempfile.mkdtemp(prefix="ober-notify-")
        self.path = os.path.join(self.directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.02)
        self.messages: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def count(self, assignment: str) -> int:
        return sum(assignment in message.split("\n") for message in list(self.messages))

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=2)
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


# ---- the program, and the test playing ExaBGP


@dataclass
class Files:
    config: Path
    state: Path
    maintenance: Path
    drain: Path


def write_config(tmp_path: Path, health_url: str, **overrides: object) -> Files:
    files = Files(
        config=tmp_path / "health.toml",
        state=tmp_path / "state.json",
        maintenance=tmp_path / "maintenance",
        drain=tmp_path / "drain",
    )
    settings: dict[str, object] = {
        "interval": INTERVAL,
        "timeout": 0.5,
        "rise": RISE,
        "fall": FALL,
        "haproxy_url": health_url,
        "stats_socket": str(tmp_path / "no-haproxy.sock"),  # never asked: no VIP names a backend
        "maintenance_file": str(files.maintenance),
        "drain_file": str(files.drain),
        "state_file": str(files.state),
        "shutdown_ack_timeout": 1.0,
        **overrides,
    }
    lines = ["[health]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    lines += ["", "[[vip]]", f'prefix = "{V4}"', "med = 100", 'communities = ["65000:100"]']
    lines += ["", "[[vip]]", f'prefix = "{V6}"']
    files.config.write_text("\n".join(lines) + "\n")
    return files


@dataclass
class Program:
    """One `ober-health` process; `ack` is what the test answers to each line ("done", "error" or None)."""

    proc: subprocess.Popen[bytes]
    files: Files
    ack: str | None = "done"
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    state_problems: list[str] = field(default_factory=list)
    states_read: int = 0
    _stop_watch: threading.Event = field(default_factory=threading.Event)
    _stdin_lock: threading.Lock = field(default_factory=threading.Lock)
    _readers: list[threading.Thread] = field(default_factory=list)

    def start_threads(self) -> None:
        self._readers = [
            threading.Thread(target=target, daemon=True) for target in (self._read_stdout, self._read_stderr)
        ]
        for thread in [*self._readers, threading.Thread(target=self._watch_state, daemon=True)]:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode().rstrip("\n")
            self.seen.append(line)
            self.lines.put(line)
            if self.ack is not None:
                self.send(self.ack + "\n")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip("\n"))

    def _watch_state(self) -> None:
        """The state file must be a complete state every time anyone reads it, from the first write on."""
        while not self._stop_watch.is_set():
            try:
                text = self.files.state.read_text()
            except FileNotFoundError:
                if self.states_read:
                    self.state_problems.append("state file disappeared")
            else:
                try:
                    state = json.loads(text)
                    assert state["version"] == 1 and set(state["vips"]) == {V4, V6}
                except (ValueError, KeyError, TypeError, AssertionError) as exc:
                    self.state_problems.append(f"{exc!r}: {text[:200]!r}")
                self.states_read += 1
            time.sleep(0.005)

    def send(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        with self._stdin_lock:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass  # the program is gone or its stdin closed: like ExaBGP, nothing to do

    def next_lines(self, count: int, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while len(got) < count:
            try:
                got.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"got {got} of {count} lines in {timeout:g}s; stderr: {self.stderr[-5:]}"
                ) from None
        return got

    def assert_quiet(self, duration: float = QUIET) -> None:
        """No line for `duration` seconds, while the program keeps checking (or the silence proves nothing)."""
        loops_before = self.state()["loops"]
        try:
            line = self.lines.get(timeout=duration)
        except queue.Empty:
            pass
        else:
            raise AssertionError(f"unexpected line {line!r} (all lines: {self.seen})")
        assert self.state()["loops"] >= loops_before + 4, "the program stopped looping: silence proves nothing"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.files.state.read_text())
        return data

    def settled_state(self, timeout: float = 10.0) -> dict[str, Any]:
        """The state of a loop that began after this call: it includes every line read so far.

        A loop writes its lines first and its state file last, so right after a line the file may still
        show the previous loop.
        """
        loops = self.state()["loops"]
        wait_for(lambda: self.state()["loops"] > loops, "one more loop", timeout)
        return self.state()

    def vip_states(self) -> dict[str, str]:
        return {prefix: vip["state"] for prefix, vip in self.state()["vips"].items()}

    def wait_exit(self, timeout: float) -> int:
        """The exit code, once the program has exited and everything it wrote has been read."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout:g}s later; stderr: {self.stderr[-5:]}") from None
        for thread in self._readers:
            thread.join(timeout=5)
        return code

    def close_stdin(self) -> None:
        """What ExaBGP's exit looks like from here."""
        with self._stdin_lock:
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def stop(self) -> None:
        self._stop_watch.set()
        if self.proc.poll() is None:
            self.proc.kill()  # by its pid, which this test started
        self.proc.wait(timeout=5)
        for thread in self._readers:
            thread.join(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


StartProgram = Callable[..., Program]


@pytest.fixture
def start(tmp_path: Path, health: HealthServer, notify: NotifySocket) -> Iterator[StartProgram]:
    started: list[Program] = []

    def run(ack: str | None = "done", **overrides: object) -> Program:
        files = write_config(tmp_path, health.url, **overrides)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": notify.path,
            "PYTHONPATH": str(REPO),
            # the probe of the local HAProxy must never take a proxy: with one dead, nothing would announce
            "http_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "no_proxy": "",
        }
        proc = subprocess.Popen(
            [*OBER_HEALTH, "--config", str(files.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        program = Program(proc, files, ack=ack)
        started.append(program)
        program.start_threads()
        return program

    try:
        yield run
    finally:
        for program in started:
            program.stop()
        problems = [problem for program in started for problem in program.state_problems]
        assert problems == [], problems


def announced(start: StartProgram, **kwargs: Any) -> Program:
    program = start(**kwargs)
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]
    return program


def ober_status(files: Files) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [*OBER, "--config", str(files.config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, data, result.stderr


# ---- announce / withdraw


def test_announces_every_vip_after_rise_in_the_documented_format(start: StartProgram, notify: NotifySocket) -> None:
    program = announced(start)
    state = program.settled_state()
    for prefix in (V4, V6):
        vip = state["vips"][prefix]
        assert vip["state"] == "announced" and vip["announces"] == 1 and vip["withdraws"] == 0, vip
        assert vip["good_streak"] >= RISE, vip  # announced on the rise-th good check, not before
    program.assert_quiet()


def test_nothing_is_announced_while_haproxy_answers_503(start: StartProgram, health: HealthServer) -> None:
    health.status = 503
    program = start()
    wait_for(lambda: program.files.state.exists() and program.state()["loops"] >= RISE + 2, "a few loops")
    program.assert_quiet()
    assert program.vip_states() == {V4: "withdrawn", V6: "withdrawn"}
    assert program.state()["vips"][V4]["reason"] == f"{health.url} answered 503"
    health.status = 200
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_503_withdraws_after_fall_then_rise_announces_again(start: StartProgram, health: HealthServer) -> None:
    program = announced(start)
    health.status = 503
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    state = program.settled_state()["vips"][V4]
    assert state["state"] == "withdrawn" and state["bad_streak"] >= FALL, state
    assert state["reason"] == f"{health.url} answered 503"
    program.assert_quiet()  # still 503: no repeated withdraw
    health.status = 200
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]
    program.assert_quiet()
    vip = program.settled_state()["vips"][V4]
    assert (vip["announces"], vip["withdraws"]) == (2, 1), vip


def test_fewer_bad_checks_than_fall_do_not_withdraw(start: StartProgram, health: HealthServer) -> None:
    program = announced(start, fall=50)  # wide enough to catch several bad checks in a row, and stop them
    health.status = 503
    wait_for(lambda: program.state()["vips"][V4]["bad_streak"] >= 5, "five bad checks")
    health.status = 200
    program.assert_quiet()
    assert program.vip_states() == {V4: "announced", V6: "announced"}


def test_hung_haproxy_withdraws_after_timeouts(start: StartProgram, health: HealthServer) -> None:
    program = announced(start, timeout=0.3)
    health.hang.set()
    assert program.next_lines(2, timeout=10) == [WITHDRAW_V4, WITHDRAW_V6]
    assert program.settled_state()["vips"][V4]["reason"] == f"{health.url} did not answer within 0.3s"
    health.hang.clear()
    health.release.set()
    assert program.next_lines(2, timeout=10) == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_maintenance_file_withdraws_at_once_and_removal_announces_after_rise(start: StartProgram) -> None:
    program = announced(start, fall=1000)  # a drain must not wait for `fall` bad checks
    program.files.maintenance.write_text("planned\n")
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    state = program.settled_state()
    assert state["drained"] is True
    assert state["drain_reason"] == f"maintenance: {program.files.maintenance} present"
    program.assert_quiet()
    code, status, _ = ober_status(program.files)
    assert code == 1 and status["drained"] is True, status
    program.files.maintenance.unlink()
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]
    assert program.settled_state()["drained"] is False
    program.assert_quiet()


def test_drain_file_withdraws_too(start: StartProgram) -> None:
    program = announced(start)
    program.files.drain.write_text("stopping\n")
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    assert program.settled_state()["drain_reason"] == f"drain (service stopping): {program.files.drain} present"


def test_ober_drain_wait_and_undrain(start: StartProgram) -> None:
    program = announced(start)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    config = str(program.files.config)
    drain = subprocess.run(
        [*OBER, "--config", config, "drain", "--wait", "--timeout", "10", "--reason", "contract test"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert drain.returncode == 0, drain.stdout + drain.stderr
    assert "every VIP withdrawn" in drain.stdout
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    assert "contract test" in program.files.maintenance.read_text()
    undrain = subprocess.run(
        [*OBER, "--config", config, "undrain"], capture_output=True, text=True, timeout=30, check=False, env=env
    )
    assert undrain.returncode == 0 and not program.files.maintenance.exists()
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]


# ---- what ExaBGP writes to us


def test_error_reply_is_logged_and_the_program_goes_on(start: StartProgram, health: HealthServer) -> None:
    program = announced(start, ack="error")
    wait_for(lambda: any("ExaBGP rejected a command: error" in line for line in program.stderr), "the error logged")
    program.ack = "done"
    health.status = 503
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    assert program.proc.poll() is None


def test_neighbor_events_blank_lines_and_garbage_are_survived(start: StartProgram, health: HealthServer) -> None:
    program = announced(start)
    for text in [
        "neighbor 198.51.100.1 up\n",
        "\n\n   \n\r\n",
        "neighbor 198.51.100.1 connected\n",
        "neighbor 198.51.100.1 down - peer reset\n",
        "garbage \x00\x01 line\n",
        '{"type": "state", "neighbor": {"address": {"peer": "2001:db8::1"}, "state": "up"}}\n',
        '{"exabgp": "5.0", "type": "state", "neighbor": 7}\n',
        '{"a": ' + "[" * 50_000 + "\n",  # deeper than the JSON decoder's recursion limit
        "announce route 192.0.2.1/32 next-hop self\n",  # our own words echoed back mean nothing
        "a line without end",
    ]:
        program.send(text)
    program.send(b"\xff\xfe not utf-8 \xc3\n")
    program.assert_quiet()
    assert program.proc.poll() is None
    assert any("BGP session with 198.51.100.1 up" in line for line in program.stderr), program.stderr
    assert any("BGP session with 198.51.100.1 down" in line for line in program.stderr), program.stderr
    assert any("BGP session with 2001:db8::1 up" in line for line in program.stderr), program.stderr
    assert not any("Traceback" in line for line in program.stderr), program.stderr
    # and it still does its job
    health.status = 503
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]


def test_exabgp_shutdown_message_withdraws_and_exits(start: StartProgram) -> None:
    program = announced(start, ack=None)  # ExaBGP that says `shutdown` reads no more commands
    program.send("shutdown 4242 1\n")
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    assert program.wait_exit(2.0) == 0


# ---- how it ends


def test_sigterm_withdraws_every_announced_vip_and_exits_0_within_2s_without_acks(start: StartProgram) -> None:
    program = announced(start, ack=None)  # this ExaBGP acknowledges nothing: the wait for acks is bounded
    program.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = program.wait_exit(2.0)  # ExaBGP SIGKILLs its API processes 2 s after SIGTERM
    assert code == 0
    assert time.monotonic() - started < 2.0
    assert program.seen == [ANNOUNCE_V4, ANNOUNCE_V6, WITHDRAW_V4, WITHDRAW_V6]
    state = program.state()
    assert state["stopping"] is True and set(program.vip_states().values()) == {"withdrawn"}, state


def test_systemd_stop_sequence_withdraws_once_and_exits_within_2s(start: StartProgram) -> None:
    """`systemctl stop`: SIGTERM to the whole unit, ExaBGP's `shutdown` line, then ExaBGP's own SIGTERM."""
    program = announced(start, ack=None)
    program.proc.send_signal(signal.SIGTERM)
    program.send("shutdown 4242 1\n")
    program.proc.send_signal(signal.SIGTERM)
    assert program.wait_exit(2.0) == 0
    assert program.seen == [ANNOUNCE_V4, ANNOUNCE_V6, WITHDRAW_V4, WITHDRAW_V6]


def test_sigint_is_a_stop_too(start: StartProgram) -> None:
    program = announced(start)
    program.proc.send_signal(signal.SIGINT)
    assert program.wait_exit(2.0) == 0
    assert program.seen[2:] == [WITHDRAW_V4, WITHDRAW_V6]


def test_sigterm_with_acks_exits_0(start: StartProgram) -> None:
    program = announced(start)
    program.proc.send_signal(signal.SIGTERM)
    assert program.wait_exit(2.0) == 0
    assert program.seen[2:] == [WITHDRAW_V4, WITHDRAW_V6]
    assert not any("did not acknowledge" in line for line in program.stderr), program.stderr


def test_sigterm_while_haproxy_hangs_still_withdraws_within_2s(start: StartProgram, health: HealthServer) -> None:
    program = announced(start, ack=None, interval=0.2, timeout=2.0, fall=1000)
    health.hang.set()
    wait_for(lambda: health.hung >= 1, "a check to hang")
    time.sleep(0.1)  # well inside the hung 2 s check
    program.proc.send_signal(signal.SIGTERM)
    assert program.wait_exit(2.0) == 0
    assert program.seen[2:] == [WITHDRAW_V4, WITHDRAW_V6]


def test_sigterm_before_anything_is_announced_withdraws_nothing(start: StartProgram, health: HealthServer) -> None:
    health.status = 503
    program = start()
    wait_for(program.files.state.exists, "the first loop")
    program.proc.send_signal(signal.SIGTERM)
    assert program.wait_exit(2.0) == 0
    assert program.seen == []


def test_stdin_eof_exits_promptly(start: StartProgram) -> None:
    program = announced(start)
    program.close_stdin()  # ExaBGP is gone
    assert program.wait_exit(2.0) == 0
    assert any("stdin closed" in line for line in program.stderr), program.stderr


def test_stdin_eof_before_the_first_announce_exits_promptly(start: StartProgram, health: HealthServer) -> None:
    health.status = 503
    program = start()
    program.close_stdin()
    assert program.wait_exit(2.0) == 0


# ---- systemd


def test_ready_once_and_watchdog_after_every_loop(start: StartProgram, notify: NotifySocket) -> None:
    program = announced(start)
    loops = program.state()["loops"]
    wait_for(lambda: notify.count("WATCHDOG=1") >= 10, "ten watchdog pings")
    assert program.state()["loops"] >= loops
    assert notify.count("READY=1") == 1, notify.messages
    ready = next(message for message in notify.messages if "READY=1" in message.split("\n"))
    assert notify.messages.index(ready) == 0, "READY=1 is the first message"
    # a hung health program must stop pinging: no ping without a loop, so never more pings than loops
    wait_for(lambda: notify.count("WATCHDOG=1") >= 15, "more pings")
    assert notify.count("WATCHDOG=1") <= program.state()["loops"] + 1


def test_watchdog_stops_while_a_check_hangs_longer_than_the_interval(
    start: StartProgram, health: HealthServer, notify: NotifySocket
) -> None:
    announced(start, interval=0.1, timeout=1.0)
    health.hang.set()
    wait_for(lambda: health.hung >= 1, "a hung check")
    before = notify.count("WATCHDOG=1")
    started = time.monotonic()
    time.sleep(0.5)
    after = notify.count("WATCHDOG=1")
    window = time.monotonic() - started  # more than 0.5 s if this test was not scheduled in time
    # every check now takes 1 s, so loops complete (and ping) at least 1 s apart: at most one in half a
    # second, where a healthy 0.1 s loop would have pinged about five times
    assert after <= before + 1 + int(window), (before, after, window)


def test_without_notify_socket_runs_the_same(tmp_path: Path, health: HealthServer) -> None:
    files = write_config(tmp_path, health.url)
    env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [*OBER_HEALTH, "--config", str(files.config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    program = Program(proc, files)
    program.start_threads()
    try:
        assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]
    finally:
        program.stop()


# ---- the state file and `ober status`


def test_state_file_is_complete_json_throughout_and_records_transitions(
    start: StartProgram, health: HealthServer
) -> None:
    program = announced(start)
    first = program.settled_state()["vips"][V4]
    for _ in range(2):
        health.status = 503
        program.next_lines(2)
        health.status = 200
        program.next_lines(2)
    program.files.maintenance.write_text("x")
    program.next_lines(2)
    program.files.maintenance.unlink()
    program.next_lines(2)
    state = program.settled_state()
    assert state["version"] == 1 and state["pid"] == program.proc.pid and state["interval"] == INTERVAL
    for prefix in (V4, V6):
        vip = state["vips"][prefix]
        assert vip["state"] == "announced"
        assert (vip["announces"], vip["withdraws"]) == (4, 3), vip
        assert vip["since"] > first["since"] and vip["since"] <= state["updated_at"], vip
        assert vip["last_ok"] is True and vip["reason"] == "no backend to count"
    assert program.states_read >= 50 and program.state_problems == []


def test_ober_status_exit_codes(start: StartProgram, health: HealthServer, tmp_path: Path) -> None:
    files = write_config(tmp_path, health.url)
    code, status, _ = ober_status(files)
    assert code == 2 and status["running"] is False, status  # no state file yet: not running

    program = announced(start)
    program.settled_state()
    code, status, _ = ober_status(program.files)
    assert code == 0, status
    assert status["running"] is True and status["pid"] == program.proc.pid
    assert {prefix: vip["state"] for prefix, vip in status["vips"].items()} == {V4: "announced", V6: "announced"}

    health.status = 503
    program.next_lines(2)
    program.settled_state()
    code, status, _ = ober_status(program.files)
    assert code == 1 and status["vips"][V4]["state"] == "withdrawn", status

    health.status = 200
    program.next_lines(2)
    program.proc.kill()
    program.wait_exit(5)
    code, status, _ = ober_status(program.files)
    assert code == 2 and status["running"] is False, status  # last state says announced, but nobody writes it

    program.files.config.write_text('[health]\ninterval = 0\n[[vip]]\nprefix = "203.0.113.300/32"\n')
    code, _, stderr = ober_status(program.files)
    assert code == 3
    assert "health.interval: 0 " in stderr and "vip[0].prefix: '203.0.113.300/32' " in stderr, stderr


def test_ober_status_sees_a_stale_state_as_not_running(start: StartProgram) -> None:
    program = announced(start)
    program.proc.send_signal(signal.SIGSTOP)  # hung: alive, but no longer writing its state
    try:
        wait_for(lambda: ober_status(program.files)[0] == 2, "ober status to call the state stale", timeout=15)
    finally:
        program.proc.send_signal(signal.SIGCONT)


# ---- --check


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OBER_HEALTH, "--check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_check_accepts_a_good_config(tmp_path: Path, health: HealthServer) -> None:
    files = write_config(tmp_path, health.url)
    result = run_check(files.config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{files.config}: OK (2 VIP(s))"
    assert not files.state.exists()  # a check runs nothing


def test_check_rejects_a_bad_config_naming_every_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        "[health]\nrise = 0\ninterval = -1\n"
        '[[vip]]\nprefix = "203.0.113.300/32"\n'
        '[[vip]]\nprefix = "203.0.113.10/32"\nmed = -5\ncommunities = ["65000"]\nmedd = 5\n'
    )
    result = run_check(path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for expected in (
        "health.rise: 0 ",
        "health.interval: -1 ",
        "vip[0].prefix: '203.0.113.300/32' ",
        "vip[1].med: -5 ",
        "vip[1].communities: '65000' ",
        "vip[1].medd: unknown key (value 5)",
    ):
        # one line per problem, each naming the file, the key and the value
        assert f"ober-health: {path}: {expected}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[health]\n", "vip: no [[vip]] table"), ("this is not toml\n", "not valid TOML")],
)
def test_check_rejects_an_empty_or_broken_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = run_check(path)
    assert result.returncode == 1 and expected in result.stderr, result.stderr


def test_check_of_a_missing_file(tmp_path: Path) -> None:
    result = run_check(tmp_path / "absent.toml")
    assert result.returncode == 1 and "cannot read" in result.stderr, result.stderr


def test_bad_config_without_check_exits_1_and_announces_nothing(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[vip]]\nprefix = "203.0.113.10/24"\n')
    result = subprocess.run(
        [*OBER_HEALTH, "--config", str(path)],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "vip[0].prefix: '203.0.113.10/24'" in result.stderr
