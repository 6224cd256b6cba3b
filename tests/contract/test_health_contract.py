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
import re
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

from ober_health.statefile import STATE_VERSION
from tests.conftest import record_figure

REPO = Path(__file__).resolve().parents[2]
V4, V6 = "203.0.113.10/32", "2001:db8:203::10/128"
PEER_V4, PEER_V6 = "198.51.100.1", "2001:db8::1"  # the sessions this test's ExaBGP has
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
        # socketserver's accept() after select() can block for ever when the connection went away in
        # between (a client killed mid-connect): then shutdown() waits for ever. A timeout makes it return.
        self.server.socket.settimeout(0.2)
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
    listen: str  # the status endpoint, "" when off


def free_port() -> int:
    """A loopback port nobody listens on now (the test machine is shared: never a fixed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp_path: Path, health_url: str, peers: bool = False, **overrides: object) -> Files:
    files = Files(
        config=tmp_path / "health.toml",
        state=tmp_path / "run" / "state.json",
        maintenance=tmp_path / "maintenance",
        drain=tmp_path / "run" / "drain",
        listen=str(overrides.pop("status_listen", f"127.0.0.1:{free_port()}")),
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
        "status_listen": files.listen,
        **overrides,
    }
    hold_time = settings.pop("hold_time", 9)
    lines = ["[health]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    if peers:
        lines += ["", "[bgp]", "local_asn = 65001", 'router_id = "198.51.100.11"', f"hold_time = {hold_time}"]
        lines += ["", "[[peer]]", f'address = "{PEER_V4}"', "asn = 65000"]
        lines += ["", "[[peer]]", f'address = "{PEER_V6}"', "asn = 65000"]
    lines += ["", "[[vip]]", f'prefix = "{V4}"', "med = 100", 'communities = ["65000:100"]']
    lines += ["", "[[vip]]", f'prefix = "{V6}"']
    files.config.write_text("\n".join(lines) + "\n")
    return files


@dataclass
class Program:
    """One `ober-health` process and the test playing its ExaBGP.

    `ack` is what the test answers to each route command ("done", "error" or None for nothing). Like ExaBGP,
    the test keeps an adj-rib-out (`rib`: prefix -> peers) from the commands it acknowledged, and answers
    `show adj-rib out` and `show neighbor json` from it and from `up` (the sessions it reports established),
    unless `answer_shows` is off (a hung ExaBGP). Route commands go to `lines`/`seen`, shows to `shows`.
    """

    proc: subprocess.Popen[bytes]
    files: Files
    ack: str | None = "done"
    answer_shows: bool = True
    show_delay: float = 0.0
    rib: dict[str, set[str]] = field(default_factory=dict)
    up: set[str] = field(default_factory=lambda: {PEER_V4, PEER_V6})
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    shows: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    state_problems: list[str] = field(default_factory=list)
    states_read: int = 0
    _stop_watch: threading.Event = field(default_factory=threading.Event)
    _stdin_lock: threading.Lock = field(default_factory=threading.Lock)
    _readers: list[threading.Thread] = field(default_factory=list)
    _later: queue.Queue[tuple[float, str]] = field(default_factory=queue.Queue)
    _later_thread: threading.Thread | None = None

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
            if line.startswith("show "):
                self.shows.append(line)
                if self.answer_shows:
                    self.send_at(time.monotonic() + self.show_delay, self.show(line))
                continue
            self.seen.append(line)
            self.lines.put(line)
            if self.ack is not None:
                if self.ack == "done":
                    self.apply(line)
                self.send(self.ack + "\n")

    def apply(self, line: str) -> None:
        """What ExaBGP's adj-rib-out does with an acknowledged route command (its peer selector honoured)."""
        verb = "announce" if "announce route " in line else "withdraw"
        selected, _, rest = line.partition(f"{verb} route ")
        prefix = rest.split()[0]
        family = 6 if ":" in prefix else 4
        peers = set(re.findall(r"neighbor (\S+)", selected)) or {
            peer for peer in (PEER_V4, PEER_V6) if (6 if ":" in peer else 4) == family
        }
        if verb == "announce":
            self.rib.setdefault(prefix, set()).update(peers)
        elif prefix in self.rib:
            self.rib[prefix] -= peers
            if not self.rib[prefix]:
                del self.rib[prefix]

    def show(self, line: str) -> str:
        if line == "show adj-rib out":
            out = []
            for prefix, peers in sorted(self.rib.items()):
                family = "ipv6" if ":" in prefix else "ipv4"
                hop = "2001:db8::11" if family == "ipv6" else "198.51.100.11"
                out += [f"{peer} {family} unicast {prefix} next-hop {hop}" for peer in sorted(peers)]
            return "".join(f"{text}\n" for text in [*out, "done"])
        if line == "show neighbor json":
            table = [
                {
                    "state": "up" if peer in self.up else "down",
                    "duration": 5 if peer in self.up else 0,
                    "fsm": "ESTABLISHED" if peer in self.up else "ACTIVE",
                    "local": {"address": "198.51.100.11", "as": 65001, "hold": 9},
                    "peer": {"address": peer, "as": 65000, "hold": 3},
                }
                for peer in (PEER_V4, PEER_V6)
            ]
            return json.dumps(table) + "\ndone\n"
        return "error\n"

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
            except OSError:
                pass  # a test made it unreadable on purpose
            else:
                try:
                    state = json.loads(text)
                    assert state["version"] == STATE_VERSION and set(state["vips"]) == {V4, V6}
                except (ValueError, KeyError, TypeError, AssertionError) as exc:
                    self.state_problems.append(f"{exc!r}: {text[:200]!r}")
                self.states_read += 1
            time.sleep(0.005)

    def send_at(self, due: float, text: str) -> None:
        """Answer at `due` (a slow ExaBGP answers each command a while after it came), in order."""
        if due <= time.monotonic() and self._later.empty():
            self.send(text)
            return
        if self._later_thread is None:
            self._later_thread = threading.Thread(target=self._send_later, daemon=True)
            self._later_thread.start()
        self._later.put((due, text))

    def _send_later(self) -> None:
        while not self._stop_watch.is_set():
            try:
                due, text = self._later.get(timeout=0.1)
            except queue.Empty:
                continue
            time.sleep(max(0.0, due - time.monotonic()))
            self.send(text)

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


def program_env(notify: NotifySocket | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        # the probe of the local HAProxy must never take a proxy: with one dead, nothing would announce
        "http_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
    }
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
    else:
        env.pop("NOTIFY_SOCKET", None)
    return env


@pytest.fixture
def start(tmp_path: Path, health: HealthServer, notify: NotifySocket) -> Iterator[StartProgram]:
    started: list[Program] = []

    def run(
        ack: str | None = "done",
        rib: dict[str, set[str]] | None = None,
        before: bytes = b"",
        wrap: list[str] | None = None,
        peers: bool = False,
        **overrides: object,
    ) -> Program:
        """`rib`: what ExaBGP already announces (left by a previous process); `before`: what ExaBGP wrote to
        the program's stdin before it runs (answers meant for the previous one); `wrap`: a command prefix."""
        files = write_config(tmp_path, health.url, peers=peers, **overrides)
        files.state.parent.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [*(wrap or []), *OBER_HEALTH, "--config", str(files.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=program_env(notify),
            cwd=tmp_path,
        )
        program = Program(proc, files, ack=ack, rib={k: set(v) for k, v in (rib or {}).items()})
        if before:
            program.send(before)
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


def test_error_reply_is_logged_shown_and_the_announce_retried(start: StartProgram, health: HealthServer) -> None:
    """ExaBGP refused the announce: the route is not out there. Status says so; the next read of ExaBGP's
    adj-rib-out finds the VIP missing, and it is announced again after `rise` good checks."""
    program = announced(start, ack="error")
    wait_for(lambda: any(f"ExaBGP rejected `{ANNOUNCE_V4}`" in line for line in program.stderr), "the error logged")
    wait_for(lambda: program.state()["vips"][V4]["acked"] is False, "the rejection in the state")

    def rejection_shown() -> bool:  # until the next read of ExaBGP's RIB finds the VIP missing (<= 1 s)
        code, status, _ = ober_status(program.files)
        return code == 1 and f"{V4}: ExaBGP rejected (error) the announce" in status["problems"]

    wait_for(rejection_shown, "ober status to show the rejection")
    program.ack = "done"
    wait_for(lambda: ober_status(program.files)[0] == 0, "ober status to be green (a retry accepted)")
    assert any("ExaBGP does not announce it although this process did" in line for line in program.stderr)
    assert set(program.seen) == {ANNOUNCE_V4, ANNOUNCE_V6}, "retries are announces, nothing else"
    while not program.lines.empty():
        program.lines.get()
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
    assert any("BGP session with 198.51.100.1 established" in line for line in program.stderr), program.stderr
    assert any("BGP session with 198.51.100.1 down: peer reset" in line for line in program.stderr), program.stderr
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
    # the state file exists from the start, before ExaBGP's adj-rib-out was read: a SIGTERM then must withdraw
    # every VIP (nothing is known); after the first loop nothing was announced, so nothing is withdrawn
    wait_for(lambda: program.files.state.exists() and program.state()["loops"] >= 1, "the first loop")
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
    assert state["version"] == STATE_VERSION and state["pid"] == program.proc.pid and state["interval"] == INTERVAL
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


# ---- a respawn: what ExaBGP already announces for us


BOTH_HELD = {V4: {PEER_V4}, V6: {PEER_V6}}


def test_respawned_on_a_healthy_node_it_takes_the_routes_over_without_a_line(start: StartProgram) -> None:
    program = start(rib=BOTH_HELD)
    wait_for(lambda: program.files.state.exists() and program.state()["loops"] >= RISE + 2, "a few loops")
    program.assert_quiet(1.5)  # a probe of ExaBGP's RIB and sessions every second, never a route line
    assert program.shows.count("show adj-rib out") >= 2 and program.seen == []
    state = program.settled_state()
    assert {p: (v["state"], v["acked"]) for p, v in state["vips"].items()} == {
        V4: ("announced", True),
        V6: ("announced", True),
    }
    assert "held 2 of 2 VIP(s)" in state["exabgp"]["reconciled"]
    assert ober_status(program.files)[0] == 0


def test_respawned_on_a_failing_node_it_withdraws_within_fall_checks(start: StartProgram, health: HealthServer) -> None:
    health.status = 503
    started = time.monotonic()
    program = start(rib=BOTH_HELD)
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    record_figure("contract: respawn on a failing node -> withdraw lines", time.monotonic() - started)
    assert program.rib == {}
    assert program.settled_state()["vips"][V4]["bad_streak"] >= FALL


def test_answers_meant_for_the_previous_process_are_not_taken_for_ours(
    start: StartProgram, health: HealthServer
) -> None:
    """ExaBGP ran the dead process's last commands after respawning us: their `done` sit in our stdin before
    we ask anything. Taken for the answer to `show adj-rib out`, they would read as "nothing announced" and
    the failing node would keep its routes."""
    health.status = 503
    program = start(rib=BOTH_HELD, before=b"done\nerror\n")
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]
    assert any("ignored 'done': an answer to the previous health program" in line for line in program.stderr)


def test_a_prefix_the_config_no_longer_has_is_withdrawn_at_start(start: StartProgram) -> None:
    program = start(rib={"203.0.113.99/32": {PEER_V4}}, peers=True)
    assert program.next_lines(1) == [f"neighbor {PEER_V4} withdraw route 203.0.113.99/32 next-hop self"]
    assert program.next_lines(2) == [f"neighbor {PEER_V4} {ANNOUNCE_V4}", f"neighbor {PEER_V6} {ANNOUNCE_V6}"]


# ---- sessions


def test_route_lines_name_the_peers_of_their_family(start: StartProgram, health: HealthServer) -> None:
    program = start(peers=True)
    assert program.next_lines(2) == [f"neighbor {PEER_V4} {ANNOUNCE_V4}", f"neighbor {PEER_V6} {ANNOUNCE_V6}"]
    health.status = 503
    assert program.next_lines(2) == [f"neighbor {PEER_V4} {WITHDRAW_V4}", f"neighbor {PEER_V6} {WITHDRAW_V6}"]


def ober(files: Files, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OBER, "--config", str(files.config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_refused_session_turns_status_and_doctor_red_naming_the_peer_and_why(start: StartProgram) -> None:
    program = start(peers=True)
    program.next_lines(2)
    wait_for(lambda: ober_status(program.files)[0] == 0, "ober status green")
    program.up.discard(PEER_V4)  # the router refuses us from now on: a wrong AS in its config
    for _ in range(2):
        program.send(f"neighbor {PEER_V4} down - notification received (2,2)\n")
        program.send(f"neighbor {PEER_V4} connected\n")
        program.send(f"neighbor {PEER_V4} receive notification code 2 subcode 2 data 0x0000FDE9\n")
    program.send(f"neighbor {PEER_V4} down - notification received (2,2)\n")
    wait_for(lambda: ober_status(program.files)[0] == 1, "ober status red")
    _, status, _ = ober_status(program.files)
    session = status["sessions"][PEER_V4]
    assert (session["state"], session["asn"]) == ("down", 65000)
    assert session["reason"].startswith("peer sent NOTIFICATION: OPEN message error / Bad Peer AS"), session
    assert any(
        f"{V4} announced but no established IPv4 BGP session carries it: {PEER_V4} (AS65000)" in line
        for line in status["problems"]
    ), status["problems"]
    assert status["sessions"][PEER_V6]["state"] == "established" and status["vips"][V6]["state"] == "announced"
    human = ober(program.files, "status")
    assert human.returncode == 1
    assert f"{PEER_V4} (AS65000): down since " in human.stdout
    assert ": peer sent NOTIFICATION: OPEN message error / Bad Peer AS" in human.stdout, human.stdout
    doctor = ober(program.files, "doctor")
    assert doctor.returncode == 1
    assert f"FAIL  BGP session {PEER_V4} (AS65000): down" in doctor.stdout and f"router {PEER_V4}" in doctor.stdout
    assert any("Bad Peer AS" in line and PEER_V4 in line for line in program.stderr), "the journal says why"
    program.up.add(PEER_V4)
    program.send(f"neighbor {PEER_V4} up\n")
    wait_for(lambda: ober_status(program.files)[0] == 0, "ober status green again")


# ---- ExaBGP's liveness


def test_a_hung_exabgp_gets_watchdog_trigger_and_no_more_pings(start: StartProgram, notify: NotifySocket) -> None:
    program = start(peers=True, hold_time=3)
    program.next_lines(2)
    wait_for(lambda: notify.count("WATCHDOG=1") >= 5, "pings")
    program.answer_shows = False  # ExaBGP stops answering (SIGSTOPped, or its loop stuck)
    program.ack = None
    started = time.monotonic()
    wait_for(lambda: notify.count("WATCHDOG=trigger") == 1, "WATCHDOG=trigger", timeout=15)
    record_figure("contract: ExaBGP silent -> WATCHDOG=trigger (hold 3 s)", time.monotonic() - started)
    pings = notify.count("WATCHDOG=1")
    time.sleep(1.0)
    assert notify.count("WATCHDOG=1") == pings and notify.count("WATCHDOG=trigger") == 1
    assert any("ExaBGP has not answered" in line and "WATCHDOG=trigger" in line for line in program.stderr)
    code, status, _ = ober_status(program.files)
    assert code == 1 and status["exabgp"]["answering"] is False, status


def test_a_slow_exabgp_is_not_a_hung_one(start: StartProgram, notify: NotifySocket) -> None:
    program = start(peers=True, hold_time=3)
    program.next_lines(2)
    program.show_delay = 2.5  # every answer 2.5 s late, inside the 3 s bound
    time.sleep(8.0)
    assert notify.count("WATCHDOG=trigger") == 0
    assert program.proc.poll() is None and program.state()["exabgp"]["answering"] is True


# ---- the truth when the state file cannot be written, and odd drain paths


def read_only_state_dir(files: Files) -> list[str]:
    """Run the program in its own mount namespace where the state directory is read-only (root is refused
    too): what a read-only or full /run looks like to it. The CLI, outside, still sees the old file."""
    directory = str(files.state.parent)
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", directory]


def stale_state_file(files: Files) -> None:
    """A state file left by an earlier run: announced, written by a pid that is gone."""
    vip = {
        "state": "announced",
        "since": 1.0,
        "last_ok": True,
        "reason": "ok",
        "checked_at": 1.0,
        "good_streak": 3,
        "bad_streak": 0,
        "announces": 1,
        "withdraws": 0,
        "command": "announce",
        "acked": True,
        "held_by": [],
    }
    exabgp = {
        "answering": True,
        "problem": "",
        "unanswered": 0,
        "oldest_unanswered": None,
        "timeout": 9.0,
        "rib_read_at": 1.0,
        "reconciled": "",
    }
    old = {
        "version": STATE_VERSION,
        "program": "ober-health",
        "pid": 2**22 + 12345,  # no such process
        "config": str(files.config.resolve()),
        "started_at": 1.0,
        "updated_at": time.time() - 3600,
        "round_started_at": 1.0,
        "interval": INTERVAL,
        "loops": 10,
        "phase": "running",
        "drained": False,
        "drain_reason": "",
        "stopping": False,
        "state_file_error": "",
        "exabgp": exabgp,
        "sessions": {},
        "vips": {V4: vip, V6: vip},
    }
    files.state.parent.mkdir(exist_ok=True)
    files.state.write_text(json.dumps(old))


def test_unwritable_state_file_status_says_the_truth_from_the_endpoint(start: StartProgram, tmp_path: Path) -> None:
    files = write_config(tmp_path, "http://127.0.0.1:9/")
    stale_state_file(files)
    program = start(wrap=read_only_state_dir(files))
    program.next_lines(2)
    wait_for(lambda: ober_status(program.files)[0] == 0, "ober status from the endpoint")
    _, status, _ = ober_status(program.files)
    assert status["source"] == "status endpoint" and status["pid"] == program.proc.pid, status
    assert any("cannot write" in w and "Read-only file system" in w for w in status["warnings"]), status
    assert any("cannot write" in line and "Read-only" in line for line in program.stderr)
    human = ober(program.files, "status")
    assert "NOT RUNNING" not in human.stdout and "WARNING: cannot write" in human.stdout, human.stdout
    doctor = ober(program.files, "doctor")
    assert doctor.returncode == 1 and f"FAIL  state file {program.files.state} is written" in doctor.stdout


def test_unwritable_state_file_and_no_endpoint_status_says_unknown_and_drain_does_not_claim(
    start: StartProgram, tmp_path: Path
) -> None:
    files = write_config(tmp_path, "http://127.0.0.1:9/", status_listen="")
    stale_state_file(files)
    program = start(wrap=read_only_state_dir(files), status_listen="")
    program.next_lines(2)
    code, status, _ = ober_status(program.files)
    assert code == 4 and status["running"] is False, status
    assert "runs but its state cannot be read" in status["error"] and "is unknown" in status["error"]
    human = ober(program.files, "status")
    assert human.returncode == 4 and "NOT RUNNING" not in human.stdout and "STATE UNKNOWN" in human.stdout
    drain = ober(program.files, "drain", "--wait", "--timeout", "3")
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]  # it did withdraw...
    assert drain.returncode == 1, drain.stdout + drain.stderr  # ...but nothing can confirm it: no claim
    assert "every VIP withdrawn" not in drain.stdout
    assert "withdraw not confirmed after 3s" in drain.stderr and "cannot be read" in drain.stderr, drain.stderr


def test_status_never_reports_another_health_programs_endpoint(start: StartProgram, tmp_path: Path) -> None:
    """Two health programs, one port (another network namespace's view, or a second config on a node):
    the CLI of config B must not report A's VIPs as its own."""
    program = announced(start)
    other = tmp_path / "other"
    other.mkdir()
    files = write_config(other, "http://127.0.0.1:9/", status_listen=program.files.listen)
    wait_for(lambda: ober_status(program.files)[0] == 0, "A's status green")
    code, status, _ = ober_status(files)
    assert code == 2 and status["running"] is False, status  # nobody runs config B
    assert status["vips"] == {}


def test_a_maintenance_path_that_is_a_directory_is_a_clear_error_everywhere(start: StartProgram) -> None:
    program = announced(start)
    program.files.maintenance.mkdir()
    assert program.next_lines(2) == [WITHDRAW_V4, WITHDRAW_V6]  # present: drained, the safe side
    reason = f"{program.files.maintenance} is a directory, not a drain file"
    wait_for(lambda: reason in program.state()["drain_reason"], "the reason in the state")
    program.assert_quiet()  # the change's log lines (drain, problem, each VIP's withdraw) are all read by now
    said = sum(reason in line for line in program.stderr)
    program.assert_quiet()
    assert said == sum(reason in line for line in program.stderr), "logged when it changed, not every loop"
    assert any(line.endswith(f"{reason}: counted as present") for line in program.stderr), program.stderr
    code, status, _ = ober_status(program.files)
    assert code == 1 and reason in status["drain_reason"]
    for command in (["drain"], ["undrain"]):
        result = ober(program.files, *command)
        assert result.returncode == 1, result
        assert f"{program.files.maintenance} is a directory, not a drain file: remove it yourself (rmdir)" in (
            result.stderr
        )
        assert "Traceback" not in result.stderr + result.stdout
    doctor = ober(program.files, "doctor")
    lines = doctor.stdout.splitlines()
    failed = next(
        i for i, line in enumerate(lines) if line.strip().startswith(f"FAIL  drain path {program.files.maintenance}")
    )
    assert doctor.returncode == 1 and "rmdir" in lines[failed + 1] and "ober undrain" not in lines[failed + 1]
    program.files.maintenance.rmdir()
    assert program.next_lines(2) == [ANNOUNCE_V4, ANNOUNCE_V6]


def test_a_maintenance_path_the_program_cannot_check_counts_as_drained(health: HealthServer) -> None:
    """ober-health runs as an unprivileged user (`ober` on a node): a maintenance file it cannot stat
    (EACCES) must not read as "not drained" - the operator may have drained the node."""
    work = Path(tempfile.mkdtemp(prefix="ober-contract-"))
    try:
        work.chmod(0o755)
        locked = work / "locked"
        locked.mkdir(mode=0o700)  # root's: the program cannot look inside
        run = work / "run"
        run.mkdir()
        shutil.chown(run, "nobody")
        files = write_config(work, health.url, maintenance_file=str(locked / "maintenance"))
        files.config.chmod(0o644)
        proc = subprocess.Popen(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                *OBER_HEALTH,
                "--config",
                str(files.config),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=program_env(None),
            cwd=work,
        )
        program = Program(proc, files)
        program.start_threads()
        try:
            wait_for(lambda: files.state.exists() and program.state()["loops"] >= RISE + 2, "a few loops")
            program.assert_quiet()  # never announced
            state = program.state()
            assert state["drained"] is True and "Permission denied" in state["drain_reason"], state
            assert any("cannot check" in line and "counted as present" in line for line in program.stderr)
        finally:
            program.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
        "vip[1].communities[0]: '65000' ",
        "vip[1].medd: unknown key (value 5;",
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
