"""The checks against a real HAProxy: its monitor URI, its stats socket, and what a dead or hung one looks like.

Each test starts its own `haproxy -W -db` (master + worker, foreground, in a process group of its own so a
test can SIGSTOP both) on free loopback ports, with a python http.server as the one live backend server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ober_health.checks import (
    STATS_REUSE_VIPS,
    CheckResult,
    Servers,
    StatsCache,
    check_backend,
    check_http,
    connect_unix,
    index_servers,
    parse_show_stat,
    read_backends,
    read_stats,
    run_checks,
    up_servers,
)
from ober_health.config import Config, HealthConfig, VipConfig

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="needs the haproxy binary (apt-get install haproxy)")

TIMEOUT = 0.5


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket is held until all are chosen (one at a time, the kernel may
    hand the same port out twice, and a backend that cannot bind never comes UP)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process group this test created for `proc` (its pid is the group id), then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGCONT)  # a stopped process does not act on SIGTERM
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=5)
    # the master is reaped, but its workers die on their own schedule: wait until none of the group runs
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    """Does any process (not a zombie) of process group `pgid` still exist?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@dataclass
class Haproxy:
    workdir: Path
    health_url: str
    socket_path: str
    backend_port: int
    proc: subprocess.Popen[bytes]
    backend: subprocess.Popen[bytes] | None = None

    def start_backend(self) -> None:
        self.backend = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "-d",
                str(self.workdir),
                str(self.backend_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop_backend(self) -> None:
        if self.backend is not None:
            stop_group(self.backend)
            self.backend = None

    def rows(self) -> list[dict[str, str]]:
        rows, error = read_stats(self.socket_path, 2.0)
        assert rows is not None, error
        return rows

    def status(self, backend: str, server: str) -> str:
        return next(r["status"] for r in self.rows() if r["pxname"] == backend and r["svname"] == server)

    def admin(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(self.socket_path)
            sock.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.strip() == b"", answer


def config_head(socket_path: str, check_timeout: str) -> str:
    """The global and defaults sections of every HAProxy these tests start: an admin stats socket, HTTP."""
    return f"""\
global
    stats socket {socket_path} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout check {check_timeout}
"""


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Haproxy]:
    assert HAPROXY is not None
    health_port, backend_port, dead_port = free_ports(3)
    socket_path = str(tmp_path / "haproxy.sock")
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        config_head(socket_path, check_timeout="2s")
        + f"""\
frontend stats
    bind 127.0.0.1:{health_port}
    monitor-uri /health
    monitor fail if {{ nbsrv(be_app) lt 1 }}
backend be_app
    option httpchk GET /
    # fall 3, check timeout 2 s: one check slowed by a loaded machine does not take the live server down
    default-server inter 100ms fall 3 rise 1
    server s1 127.0.0.1:{backend_port} check
    server s2 127.0.0.1:{dead_port} check
backend be_unchecked
    server u1 127.0.0.1:{dead_port}
backend be_none
"""
    )
    proc = subprocess.Popen(
        [HAPROXY, "-W", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "haproxy.log").open("wb"),
        start_new_session=True,  # its own process group: master and worker stop and die together
    )
    instance = Haproxy(tmp_path, f"http://127.0.0.1:{health_port}/health", socket_path, backend_port, proc)
    try:
        instance.start_backend()
        wait_for(lambda: read_stats(socket_path, 1.0)[0] is not None, "HAProxy's stats socket")
        # a loaded machine (CI runs this after the fleet) starts Python's http.server slowly: a setup bound
        wait_for(lambda: instance.status("be_app", "s1") == "UP", "be_app/s1 UP", timeout=30)
        yield instance
    finally:
        instance.stop_backend()
        stop_group(proc)
        if proc.returncode not in (0, -signal.SIGKILL):
            print((tmp_path / "haproxy.log").read_text())


# ---- check_http


def test_http_200_while_a_backend_server_is_up(haproxy: Haproxy) -> None:
    result = check_http(haproxy.health_url, TIMEOUT)
    assert result.ok, result
    assert result.reason == f"{haproxy.health_url} answered 200"


def test_http_503_when_monitor_fail_matches_and_200_again(haproxy: Haproxy) -> None:
    haproxy.stop_backend()
    wait_for(lambda: haproxy.status("be_app", "s1").startswith("DOWN"), "be_app/s1 DOWN")
    result = check_http(haproxy.health_url, TIMEOUT)
    assert not result.ok and not result.decisive, "an error status may be a moment's trouble: `fall` applies"
    assert result.reason == f"{haproxy.health_url} answered 503"
    haproxy.start_backend()
    wait_for(lambda: check_http(haproxy.health_url, TIMEOUT).ok, "the health URL to answer 200 again")


def test_http_refused_when_nothing_listens_is_decisive() -> None:
    url = f"http://127.0.0.1:{free_port()}/health"
    result = check_http(url, TIMEOUT)
    assert not result.ok and result.decisive, "nothing listens: HAProxy is gone, no need for `fall` checks"
    assert result.reason == f"{url} unreachable (Connection refused): HAProxy is not running"


def test_http_and_stats_time_out_on_a_hung_haproxy(haproxy: Haproxy) -> None:
    os.killpg(haproxy.proc.pid, signal.SIGSTOP)  # master and worker: the kernel still accepts connections
    try:
        started = time.monotonic()
        result = check_http(haproxy.health_url, TIMEOUT)
        elapsed = time.monotonic() - started
        assert not result.ok and not result.decisive, "a slow HAProxy may recover: `fall` applies"
        assert result.reason == f"{haproxy.health_url} did not answer within 0.5s"
        assert elapsed < 5, elapsed  # bounded by the timeout, not hung with HAProxy
        rows, error = read_stats(haproxy.socket_path, TIMEOUT)
        assert rows is None
        assert error == f"{haproxy.socket_path} did not answer within 0.5s"
    finally:
        os.killpg(haproxy.proc.pid, signal.SIGCONT)
    wait_for(lambda: check_http(haproxy.health_url, TIMEOUT).ok, "HAProxy to answer after SIGCONT")
    assert read_stats(haproxy.socket_path, TIMEOUT)[0] is not None


def test_http_after_haproxy_is_killed(haproxy: Haproxy) -> None:
    stop_group(haproxy.proc)
    result = check_http(haproxy.health_url, TIMEOUT)
    assert not result.ok and result.decisive and "Connection refused" in result.reason, result
    # its socket file is still there, with nobody behind it
    assert os.path.exists(haproxy.socket_path)
    rows, error = read_stats(haproxy.socket_path, TIMEOUT)
    assert rows is None and error == f"{haproxy.socket_path} unreachable (Connection refused)"


class OddServer:
    """A TCP server on loopback that answers every connection with `reply`, sent in pieces `gap` apart."""

    def __init__(self, reply: list[bytes], gap: float = 0.0) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # a blocked accept() would outlive close()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/health"
        self.reply, self.gap = reply, gap
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                conn.recv(4096)
                for piece in self.reply:
                    if self.closed.is_set():
                        break
                    conn.sendall(piece)
                    time.sleep(self.gap)

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"], "answered 200"),
        ([b"HTTP/1.0 503 Service Unavailable\r\n\r\n"], "answered 503"),
        ([b"HTTP/1.1 ", b"200 OK\r\n\r\n"], "answered 200"),  # the status line in two pieces
        ([b"SSH-2.0-OpenSSH_9.2\r\n"], "unreachable (not an HTTP answer (b'SSH-2.0-OpenSSH_9.2\\r\\n'))"),
        ([], "unreachable (not an HTTP answer (b''))"),  # closed without a word
    ],
)
def test_http_check_reads_only_the_status_line(reply: list[bytes], expected: str) -> None:
    server = OddServer(reply)
    try:
        result = check_http(server.url, TIMEOUT)
    finally:
        server.close()
    assert result.reason == f"{server.url} {expected}"
    assert result.ok is (expected == "answered 200")


def test_http_check_bounds_the_whole_exchange_not_each_read() -> None:
    """A server that trickles its status line one byte every 0.2 s must not keep the check past its timeout."""
    server = OddServer([bytes([byte]) for byte in b"HTTP/1.1 200 OK\r\n"], gap=0.2)
    try:
        started = time.monotonic()
        result = check_http(server.url, TIMEOUT)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert result.reason == f"{server.url} did not answer within {TIMEOUT:g}s"
    assert elapsed < TIMEOUT + 0.3, elapsed


# ---- stats socket


def test_up_servers_counts_only_up_servers(haproxy: Haproxy) -> None:
    wait_for(lambda: haproxy.status("be_app", "s2").startswith("DOWN"), "be_app/s2 (nothing listens) DOWN")
    rows = haproxy.rows()
    assert up_servers(rows, "be_app") == 1
    assert up_servers(rows, "be_unchecked") == 1  # "no check": HAProxy sends it traffic
    assert up_servers(rows, "be_none") == 0  # a backend without servers exists, with nobody to serve
    assert up_servers(rows, "be_missing") is None
    assert up_servers(rows, "stats") == 0  # a frontend: its FRONTEND row is not a server


def test_servers_in_maintenance_or_drain_do_not_count(haproxy: Haproxy) -> None:
    # s2 (nothing listens) is UP until its first check fails: only s1 may count before it is drained
    wait_for(lambda: haproxy.status("be_app", "s2").startswith("DOWN"), "be_app/s2 (nothing listens) DOWN")
    haproxy.admin("set server be_app/s1 state drain")
    assert haproxy.status("be_app", "s1") == "DRAIN"
    assert up_servers(haproxy.rows(), "be_app") == 0
    assert loop_count(haproxy, "be_app") == Servers(0, 2)  # the health loop's reading agrees
    haproxy.admin("set server be_app/s1 state maint")
    assert haproxy.status("be_app", "s1") == "MAINT"
    assert up_servers(haproxy.rows(), "be_app") == 0
    assert loop_count(haproxy, "be_app") == Servers(0, 2)
    haproxy.admin("set server be_app/s1 state ready")
    wait_for(lambda: up_servers(haproxy.rows(), "be_app") == 1, "be_app/s1 back UP")
    assert loop_count(haproxy, "be_app") == Servers(1, 2)
    haproxy.admin("set server be_unchecked/u1 state maint")
    assert loop_count(haproxy, "be_unchecked") == Servers(0, 1)  # "no check" in maintenance: no traffic


def loop_count(haproxy: Haproxy, backend: str) -> Servers:
    backends, error = read_backends(haproxy.socket_path, TIMEOUT)
    assert backends is not None, error
    return backends[backend]


def test_check_backend_against_live_stats(haproxy: Haproxy) -> None:
    wait_for(lambda: haproxy.status("be_app", "s2").startswith("DOWN"), "be_app/s2 DOWN")
    backends, error = read_backends(haproxy.socket_path, TIMEOUT)
    assert backends is not None, error
    vip = VipConfig("203.0.113.10/32", backend="be_app", min_up=1)
    assert check_backend(backends, "", vip) == CheckResult(True, "backend be_app has 1/2 server(s) UP")
    two = VipConfig("203.0.113.10/32", backend="be_app", min_up=2)
    assert check_backend(backends, "", two) == CheckResult(
        False, "backend be_app has 1/2 server(s) UP, needs 2", code="backend_down"
    )
    missing = VipConfig("203.0.113.10/32", backend="be_missing")
    assert check_backend(backends, "", missing) == CheckResult(
        False, "backend be_missing not found in HAProxy", code="backend_missing"
    )
    assert check_backend(backends, "", VipConfig("203.0.113.10/32")).ok  # no backend: nothing to count


def test_one_pass_index_agrees_with_the_rows_haproxy_serves(haproxy: Haproxy) -> None:
    """The loop's counts (`show backend;show servers state`, one pass) are the CLI's (`show stat`'s status
    words, every row, by name), backend by backend."""
    wait_for(lambda: haproxy.status("be_app", "s2").startswith("DOWN"), "be_app/s2 DOWN")
    backends, error = read_backends(haproxy.socket_path, TIMEOUT)
    assert backends is not None, error
    rows = haproxy.rows()
    assert backends == {"be_app": Servers(1, 2), "be_unchecked": Servers(1, 1), "be_none": Servers(0, 0)}
    for name, servers in backends.items():
        assert up_servers(rows, name) == servers.up
    assert "stats" not in backends  # a frontend is not a backend


def test_servers_haproxy_has_not_checked_yet_leave_the_decision_as_it_is(tmp_path: Path) -> None:
    """Right after a start or reload HAProxy shows servers `UP` with check_status `INI` before their first
    check: whether they serve is not known yet, so the VIP keeps its route (neither fall nor rise counts)."""
    socket_path = str(tmp_path / "stats.sock")
    silent = socket.socket()  # accepts connections (backlog) and never answers: the first check stays open
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        config_head(socket_path, check_timeout="30s")
        + f"""\
backend be_new
    option httpchk HEAD /
    server s1 127.0.0.1:{silent.getsockname()[1]} check inter 60s fall 3 rise 2
"""
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: read_backends(socket_path, TIMEOUT)[0] is not None, "HAProxy's stats socket")
        backends, _ = read_backends(socket_path, TIMEOUT)
        assert backends == {"be_new": Servers(up=0, total=1, initializing=1)}, backends
        result = check_backend(backends, "", VipConfig("203.0.113.10/32", backend="be_new"))
        assert not result.known and "not checked yet" in result.reason, result
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        silent.close()


SERVERS_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port"
)


def servers_line(backend: str, server: str, op: int, admin: int, check_status: int, check_state: int) -> str:
    return (
        f"3 {backend} 1 {server} 127.0.0.1 {op} {admin} 1 1 5 {check_status} 0 2 {check_state} 0 0 0 - 80 - 0 0 - - 0"
    )


def test_index_of_a_servers_state_answer() -> None:
    """HAProxy's numbers counted as `show stat`'s words: RUNNING and STARTING serve unless in maintenance
    (admin 0x1, 0x2, 0x20) or drain (0x8, 0x10); STOPPING (NOLB) and STOPPED do not; a checked server whose
    check status is still INI (1) is not known yet; an unchecked one (check state without 0x4) serves."""
    lines = [
        servers_line("be_a", "up", 2, 0, 6, 6),
        servers_line("be_a", "slowstart", 1, 0, 6, 6),
        servers_line("be_a", "nolb", 3, 0, 6, 6),
        servers_line("be_a", "ini", 2, 0, 1, 6),
        servers_line("be_a", "nocheck", 2, 0, 1, 0),
        servers_line("be_a", "down", 0, 0, 8, 6),
        servers_line("be_a", "drain", 2, 0x8, 6, 6),
        servers_line("be_a", "maint", 0, 0x1, 1, 14),
        servers_line("be_a", "config-disabled", 0, 0x5, 1, 14),
        servers_line("be_a", "dns-maint", 2, 0x20, 6, 6),
    ]
    text = "# name\nbe_a\nbe_b\n\n1\n" + SERVERS_HEADER + "\n" + "\n".join(lines) + "\n\n"
    expected = {"be_a": Servers(up=3, total=10, initializing=1), "be_b": Servers(0, 0)}
    assert index_servers(text) == expected
    # a line that is not a full grid row (a field HAProxy left empty) is counted line by line, not misread
    ragged = text.replace(lines[0], lines[0] + " extra")
    assert index_servers(ragged) == expected
    assert index_servers("# name\nbe_b\n\n1\n" + SERVERS_HEADER + "\n\n") == {"be_b": Servers(0, 0)}
    for wrong in ("", "Unknown command.\n", "# name\nbe_a\n\nPermission denied\n", "# name\n\n1\n# be_id\n"):
        with pytest.raises(ValueError):
            index_servers(wrong)


def test_an_answer_that_is_not_the_servers_state_is_a_stats_error(tmp_path: Path) -> None:
    """A socket that answers something else (an error line) fails the VIPs with the words, never as
    "backend not found"."""
    path = str(tmp_path / "fake.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"Unknown command.\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        backends, error = read_backends(path, TIMEOUT)
        thread.join(timeout=5)
    assert backends is None
    assert error.startswith(f"{path}: not an answer to `show backend`"), error


def test_missing_stats_socket_is_unhealthy_with_a_reason(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.sock")
    backends, error = read_backends(path, TIMEOUT)
    assert backends is None
    assert error == f"{path} unreachable (No such file or directory)"
    result = check_backend(backends, error, VipConfig("203.0.113.10/32", backend="be_app"))
    assert not result.ok
    assert result.reason == f"stats socket: {path} unreachable (No such file or directory)"


def test_socket_path_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "plain-file"
    path.write_text("")
    rows, error = read_stats(str(path), TIMEOUT)
    assert rows is None and error.startswith(f"{path} unreachable ("), error


def test_parse_show_stat_keys_rows_by_column() -> None:
    text = "# pxname,svname,status,\nbe_app,s1,UP,\nbe_app,s2,UP 1/2,\nbe_app,s3,NOLB,\nbe_app,BACKEND,UP,\n\n"
    rows = parse_show_stat(text)
    assert [(r["pxname"], r["svname"], r["status"]) for r in rows] == [
        ("be_app", "s1", "UP"),
        ("be_app", "s2", "UP 1/2"),
        ("be_app", "s3", "NOLB"),
        ("be_app", "BACKEND", "UP"),
    ]
    assert up_servers(rows, "be_app") == 2  # UP and "UP 1/2" (going down, still serving); not NOLB


def test_a_full_accept_queue_is_waited_for_within_the_timeout_not_an_error(tmp_path: Path) -> None:
    """During HAProxy's reload no worker accepts for a moment; a non-blocking unix connect then says EAGAIN
    at once. The check waits (bounded) instead: a reload is slow for a moment, never unreachable."""
    path = str(tmp_path / "busy.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(0)
        queued = []
        with contextlib.suppress(BlockingIOError):
            for _ in range(64):  # fill the accept queue
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.setblocking(False)
                queued.append(client)
                client.connect(path)
        with pytest.raises(TimeoutError):
            connect_unix(path, 0.1)

        def accept_one() -> None:  # a worker accepts again
            server.accept()[0].close()

        threading.Timer(0.05, accept_one).start()
        connect_unix(path, 2.0).close()
        for client in queued:
            client.close()


def test_at_scale_one_read_of_the_servers_serves_two_loops(haproxy: Haproxy, tmp_path: Path) -> None:
    """From STATS_REUSE_VIPS VIPs on, a loop uses the previous loop's read (one interval old at most) and
    the next one reads again; fewer VIPs read every loop; a failed HTTP check forgets the read."""
    # be_unchecked's server: its maintenance leaves HAProxy's /health (be_app's) at 200
    health = HealthConfig(
        haproxy_url=haproxy.health_url,
        stats_socket=haproxy.socket_path,
        maintenance_file=str(tmp_path / "maintenance"),
        drain_file=str(tmp_path / "drain"),
        interval=5.0,  # a wide reuse window: the test's own pauses never expire it
    )
    many = Config(
        health=health,
        vips=tuple(VipConfig(f"2001:db8:1000::{i + 1:x}/128", backend="be_unchecked") for i in range(STATS_REUSE_VIPS)),
    )
    few = Config(health=health, vips=many.vips[:2])
    vip = many.vips[0].prefix
    cache = StatsCache()
    assert run_checks(many, cache=cache).results[vip].ok  # read
    haproxy.admin("set server be_unchecked/u1 state maint")
    assert run_checks(many, cache=cache).results[vip].ok, "the second loop must use the first loop's read"
    assert run_checks(many, cache=cache).results[vip].code == "backend_down"  # read again: u1 in maintenance
    assert run_checks(few, cache=StatsCache()).results[vip].code == "backend_down"
    haproxy.admin("set server be_unchecked/u1 state ready")
    assert run_checks(few, cache=cache).results[vip].ok  # fewer VIPs: every loop reads
    cache.forget()
    assert run_checks(many, cache=cache).results[vip].ok  # read
    haproxy.admin("set server be_unchecked/u1 state maint")
    cache.forget()  # what a failed HTTP check or HAProxy's master exiting does
    assert run_checks(many, cache=cache).results[vip].code == "backend_down"
