"""What "healthy" means on a node: HAProxy answers its health URL, and enough backend servers are UP.

One HTTP check and at most one read of HAProxy's server states per loop (SERVERS_COMMAND), shared by every
VIP, read in one pass into counts per backend: the loop's cost grows with HAProxy's servers, not with VIPs x
servers (bench/healthloop.py). Both have a
hard timeout, so a hung (SIGSTOPped) HAProxy is unhealthy within `timeout`, not never.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import re
import socket
import stat
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from ober_health.config import Config, VipConfig

log = logging.getLogger("ober-health")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str
    # False when the answer is not known yet (servers HAProxy has not checked since it started): the VIP
    # keeps its current route and its streaks, so a reload neither withdraws nor announces it
    known: bool = True
    # True for a failure that says HAProxy is dead (its health port refused the connection): it withdraws at
    # once instead of after `fall` (ober_health.machine); a reload keeps the listeners, so never refuses
    decisive: bool = False
    # a failure's cause as one machine-readable word (metrics label `reason`; FAILURE_CODES); "" when ok
    code: str = ""


# Every `code` a failed check can carry, and what it means (README: Metrics; alert rules group by them).
FAILURE_CODES = {
    "haproxy_timeout": "HAProxy's health URL did not answer within the timeout (hung or overloaded)",
    "haproxy_unreachable": "HAProxy's health URL refused or failed the connection (HAProxy down)",
    "haproxy_status": "HAProxy's health URL answered, but not 200 (its monitor fail rule: no server UP)",
    "stats_socket": "HAProxy's stats socket could not be read",
    "backend_missing": "the VIP's backend is not in HAProxy's running config",
    "backend_down": "fewer servers UP in the VIP's backend than min_up",
    "not_checked": "the round had no result for the VIP",
    "check_crashed": "the check raised an exception (a bug: the log has it)",
    "other": "a failure without a cause of its own",
}


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of one GET with the standard library's client: `timeout` bounds the connect and every
    read, no proxy is ever used, the connection is closed after it. For the CLI; the health loop uses
    `http_status`."""
    import http.client  # 0.1-0.2 s of imports (email, ssl): not on the health program's start

    parts = urllib.parse.urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", target, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    except http.client.HTTPException as exc:
        raise ConnectionError(f"not HTTP ({type(exc).__name__})") from exc
    finally:
        connection.close()


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})[ \r]")


def http_status(url: str, timeout: float) -> int:
    """The status code of one GET, all of it within `timeout` (connect, send, first line), no proxy, the
    connection closed after it (a kept-alive socket to an old worker would fail after a seamless reload).

    A plain socket for http:// URLs, not http.client or requests: only the status line matters, and a
    respawned health program must start checking at once (those imports cost 0.1-0.3 s on a loaded node,
    out of the second a respawn has to withdraw a failing VIP). https:// goes through http.client.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return http_get(url, timeout)[0]
    deadline = time.monotonic() + timeout
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout) as sock:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(request)
        head = b""
        while b"\n" not in head and len(head) < 1024:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    match = _STATUS_LINE.match(head)
    if match is None:
        raise ConnectionError(f"not an HTTP answer ({head[:40]!r})")
    return int(match[1])


def check_http(url: str, timeout: float) -> CheckResult:
    """HAProxy's `monitor-uri` answers 200 while it is up and its `monitor fail` rule does not match."""
    try:
        status = http_status(url, timeout)
    except TimeoutError:
        return CheckResult(False, f"{url} did not answer within {timeout:g}s", code="haproxy_timeout")
    except ConnectionRefusedError:
        # nothing listens on the port: HAProxy is gone (its master-worker reload hands the listening sockets
        # over, so a reload never refuses); a timeout or an error status may be a moment's trouble, this not
        return CheckResult(
            False,
            f"{url} unreachable (Connection refused): HAProxy is not running",
            decisive=True,
            code="haproxy_unreachable",
        )
    except OSError as exc:
        return CheckResult(False, f"{url} unreachable ({short_error(exc)})", code="haproxy_unreachable")
    if status != 200:
        return CheckResult(False, f"{url} answered {status}", code="haproxy_status")
    return CheckResult(True, f"{url} answered 200")


def short_error(exc: Exception) -> str:
    """The part of an error an operator needs (`Connection refused`), not a stack of wrappers."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc) or type(exc).__name__
    for marker in ("Connection refused", "No such file", "timed out", "reset by peer"):
        if marker in text:
            return marker
    return text[:120]


def connect_unix(path: str, timeout: float) -> socket.socket:
    """A connected stream socket to `path`, within `timeout`. A full accept queue (no worker accepting for a
    moment: HAProxy's reload) makes a non-blocking unix connect fail with EAGAIN at once instead of waiting,
    as a TCP connect would: retried until the deadline, so a reload reads as slow, never as unreachable."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{path}: accept queue full for {timeout:g}s") from None
            time.sleep(0.002)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


def haproxy_command(path: str, command: str, timeout: float) -> str:
    """Send one command to HAProxy's stats socket and return the whole answer."""
    with connect_unix(path, timeout) as sock:
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV (header line starts with `# `) as a list of rows keyed by column name (for the CLI;
    the health loop reads counts per backend with `index_servers`)."""
    return list(csv.DictReader(io.StringIO(text.lstrip("# "))))


class Servers(NamedTuple):
    """One backend's servers as HAProxy sees them now (a tuple: 1000 of them are built every loop)."""

    up: int  # take traffic, and HAProxy has checked them (or does not check them: "no check")
    total: int
    initializing: int = 0  # UP only because HAProxy has not run their first check yet (check_status INI)


# `UP`, `UP 1/2` (going down, still serving) and `no check` take traffic; `DOWN`, `MAINT`, `DRAIN` and `NOLB`
# get no new requests.
def _serving(status: str) -> bool:
    return status.startswith("UP") or status == "no check"


# `show servers state` (HAProxy's numeric server state, the same in 2.6 and 3.0): a server takes traffic when
# its operational state is RUNNING or STARTING (slow start) and no admin flag puts it in maintenance
# (forced, inherited, DNS resolution: SRV_ADMF_MAINT) or drain (SRV_ADMF_DRAIN); STOPPING is NOLB. Its
# first check has not run yet when checks are enabled (CHK_ST_ENABLED) and its check status is still INI.
_OP_SERVING = frozenset(("1", "2"))  # SRV_ST_STARTING, SRV_ST_RUNNING
_ADMIN_NOT_SERVING = 0x23 | 0x18  # SRV_ADMF_MAINT (FMAINT | IMAINT | RMAINT) | SRV_ADMF_DRAIN (FDRAIN | IDRAIN)
_CHECK_ENABLED = 0x4  # CHK_ST_ENABLED
_CHECK_INI = "1"  # HCHK_STATUS_INI
_SERVER_FIELDS = ("be_name", "srv_op_state", "srv_admin_state", "srv_check_status", "srv_check_state")

# The loop's one command: every backend's name (a backend without servers has no server line), then one
# line of numbers per server. At 1000 backends x 8 servers HAProxy writes 0.5 MB in ~15 ms, against 2 MB in
# ~100 ms for `show stat -1 6 -1`, and splitting 5 of its 25 space-separated fields costs a fraction of
# parsing 90 CSV columns (bench/healthloop.py).
SERVERS_COMMAND = "show backend;show servers state"


def index_servers(text: str) -> dict[str, Servers]:
    """Counts per backend from the answer to SERVERS_COMMAND: 5 of each server line's fields, counted by
    distinct combination (a few per backend), so that the Python work per server is C's, not a loop's.

    Counts as `show stat`'s status column would (`_serving`; a checked server still INI is `initializing`);
    a backend without servers is present with 0 of 0. ValueError when the answer is not that command's
    (an error message instead of the header): never an empty index that reads as "every backend missing"."""
    names, _, servers = text.partition("\n\n")
    lines = names.splitlines()
    if not lines or lines[0] != "# name":
        raise ValueError(f"not an answer to `show backend` ({text[:60]!r})")
    parts = servers.split("\n", 2)
    if len(parts) < 2 or not parts[1].startswith("# "):
        raise ValueError(f"not an answer to `show servers state` ({servers[:60]!r})")
    header = parts[1].split()[1:]
    try:
        wanted = [header.index(name) for name in _SERVER_FIELDS]
    except ValueError:
        raise ValueError(f"`show servers state` without the fields {', '.join(_SERVER_FIELDS)}") from None
    body = parts[2].strip("\n") if len(parts) > 2 else ""
    tokens = body.split()
    width = len(header)
    lines_count = body.count("\n") + 1 if body else 0
    if len(tokens) == width * lines_count:  # every field one token ("-" when empty), as HAProxy writes them
        columns = [tokens[index::width] for index in wanted]
    else:  # not a grid: line by line, short lines left out
        rows = [fields for fields in (line.split() for line in body.splitlines()) if len(fields) > max(wanted)]
        columns = [[fields[index] for fields in rows] for index in wanted]
    total = dict.fromkeys(lines[1:], 0)
    up = dict.fromkeys(total, 0)
    initializing = dict.fromkeys(total, 0)
    for (name, op, admin, status, check), count in Counter(zip(*columns, strict=True)).items():
        if name not in total:  # a backend added between the two answers: counted from its servers
            total[name] = up[name] = initializing[name] = 0
        total[name] += count
        if op in _OP_SERVING and not int(admin) & _ADMIN_NOT_SERVING:
            if status == _CHECK_INI and int(check) & _CHECK_ENABLED:
                initializing[name] += count
            else:
                up[name] += count
    return {name: Servers(up[name], total[name], initializing[name]) for name in total}


def up_servers(rows: list[dict[str, str]], backend: str) -> int | None:
    """Servers of `backend` that take traffic (see `_serving`); None when HAProxy has no such proxy."""
    found = False
    count = 0
    for row in rows:
        if row.get("pxname") != backend:
            continue
        found = True
        if row.get("svname") not in ("FRONTEND", "BACKEND") and _serving(row.get("status", "")):
            count += 1
    return count if found else None


def check_backend(backends: dict[str, Servers] | None, stats_error: str, vip: VipConfig) -> CheckResult:
    """A VIP with a `backend` needs `min_up` UP servers there; one without needs nothing more. Servers that
    HAProxy has not checked yet (just started or reloaded) make the answer unknown, unless enough checked
    servers are UP without them."""
    if vip.backend is None:
        return CheckResult(True, "no backend to count")
    if backends is None:
        return CheckResult(False, f"stats socket: {stats_error}", code="stats_socket")
    servers = backends.get(vip.backend)
    if servers is None:
        return CheckResult(False, f"backend {vip.backend} not found in HAProxy", code="backend_missing")
    return _counted(vip.backend, servers, vip.min_up)


@functools.lru_cache(maxsize=4096)
def _counted(backend: str, servers: Servers, min_up: int) -> CheckResult:
    """The verdict on one backend's counts: the same counts give the same (immutable) result, so a loop over
    1000 steady VIPs builds no new results or reasons."""
    if servers.up >= min_up:
        return CheckResult(True, f"backend {backend} has {servers.up}/{servers.total} server(s) UP")
    if servers.up + servers.initializing >= min_up:
        return CheckResult(
            False,
            f"backend {backend}: {servers.initializing} server(s) not checked yet by HAProxy, "
            f"{servers.up}/{servers.total} UP: keeping the current decision",
            known=False,
        )
    return CheckResult(
        False,
        f"backend {backend} has {servers.up}/{servers.total} server(s) UP, needs {min_up}",
        code="backend_down",
    )


def read_stats(path: str, timeout: float) -> tuple[list[dict[str, str]] | None, str]:
    """`show stat` rows, or None and why not (socket missing, refused, hung HAProxy)."""
    text, error = _show_stat(path, "show stat", timeout)
    return (None, error) if text is None else (parse_show_stat(text), "")


def read_backends(path: str, timeout: float) -> tuple[dict[str, Servers] | None, str]:
    """Counts per backend (SERVERS_COMMAND, `index_servers`), or None and why not."""
    text, error = _show_stat(path, SERVERS_COMMAND, timeout)
    if text is None:
        return None, error
    try:
        return index_servers(text), ""
    except ValueError as exc:
        return None, f"{path}: {exc}"


def _show_stat(path: str, command: str, timeout: float) -> tuple[str | None, str]:
    try:
        return haproxy_command(path, command, timeout), ""
    except TimeoutError:
        return None, f"{path} did not answer within {timeout:g}s"
    except OSError as exc:
        return None, f"{path} unreachable ({exc.strerror or exc})"


@dataclass(frozen=True)
class DrainFile:
    """What a drain path (maintenance or runtime drain file) says: present or not, and any problem with it."""

    path: str
    present: bool
    problem: str = ""  # set when the path is not a plain file, or cannot be checked


def inspect_drain_file(path: str) -> DrainFile:
    """Present = drained. A path that cannot be checked counts as present: withdrawing is the safe side, and
    an operator who drained the node must never see it announced because a permission hid the file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return DrainFile(path, False)
    except NotADirectoryError:
        return DrainFile(path, False, f"{path}: a parent of it is not a directory, so it cannot exist")
    except OSError as exc:
        return DrainFile(path, True, f"cannot check {path} ({exc.strerror or exc}): counted as present")
    if stat.S_ISDIR(info.st_mode):
        return DrainFile(path, True, f"{path} is a directory, not a drain file: counted as present")
    return DrainFile(path, True)


@dataclass(frozen=True)
class CheckRound:
    """One loop's checks: the drain files, then HAProxy and the backends, one result per VIP."""

    started: float  # monotonic, when the round began (the drain files were read then)
    started_at: float  # the same instant, wall clock (for the state file)
    drain: str  # why every VIP must be down now ("" when not drained)
    drain_problems: tuple[str, ...]
    results: dict[str, CheckResult]
    duration: float | None = None  # seconds the round took (metrics: ober_check_duration_seconds)


# From this many VIPs on, the servers' states read by one loop serve the next one too (each read is
# `index_servers` over every server: at 1000 VIPs x 8 servers 10-15 ms of the loop's CPU). HAProxy itself
# takes `fall` x `inter` (seconds) to change a server's state, so a count one loop older moves a
# backend-down withdraw by one loop (0.2 s at the defaults). The HTTP check still runs every loop.
STATS_REUSE_VIPS = 200


@dataclass
class StatsCache:
    """The last read of HAProxy's servers (the checker thread's own). Forgotten when the HTTP check fails and
    when HAProxy's master exits (ober_health.main): a new HAProxy's servers are read, never an old one's."""

    backends: dict[str, Servers] | None = None
    read_at: float = 0.0
    generation: int = 0  # moved by forget(): a read begun before it is not kept

    def forget(self) -> None:
        self.generation += 1
        self.backends = None

    def keep(self, backends: dict[str, Servers] | None, read_at: float, generation: int) -> None:
        if generation == self.generation:
            self.backends, self.read_at = backends, read_at

    def fresh(self, now: float, interval: float, timeout: float) -> dict[str, Servers] | None:
        """The last read if it is from the previous loop, else None: younger than 2 intervals + the timeout,
        so that a loop running late (a loaded machine, when the saving matters most) still reuses it."""
        backends = self.backends
        return backends if backends is not None and now - self.read_at < 2 * interval + timeout else None


def run_checks(config: Config, started: float | None = None, cache: StatsCache | None = None) -> CheckRound:
    """Everything one loop needs to decide, measured here (in the checker thread: the decider never blocks on
    a hung HAProxy). One HTTP check and at most one SERVERS_COMMAND, whatever the number of VIPs."""
    began = time.monotonic() if started is None else started
    began_at = time.time()
    health = config.health
    drain, problems = "", []
    for path, what in ((health.maintenance_file, "maintenance"), (health.drain_file, "drain (service stopping)")):
        found = inspect_drain_file(path)
        if found.problem:
            problems.append(found.problem)
        if found.present and not drain:
            drain = f"{what}: {path} present" + (f" ({found.problem})" if found.problem else "")
    try:
        results = _haproxy_results(config, cache)
    except Exception as exc:  # a crash in the HAProxy checks fails every VIP, and never loses the drain state
        log.exception("HAProxy checks failed")
        results = dict.fromkeys((vip.prefix for vip in config.vips), crashed(exc))
    return CheckRound(began, began_at, drain, tuple(problems), results, time.monotonic() - began)


def crashed(exc: Exception) -> CheckResult:
    """The result of a check that raised: failed, with the exception in the reason (never a dead checker)."""
    return CheckResult(False, f"check failed: {type(exc).__name__}: {exc}", code="check_crashed")


def _haproxy_results(config: Config, cache: StatsCache | None = None) -> dict[str, CheckResult]:
    """One result per VIP from HAProxy's health URL and, when a VIP counts servers, one SERVERS_COMMAND."""
    health = config.health
    http = check_http(health.haproxy_url, health.timeout)
    if http.decisive and not health.watch_haproxy:
        # polling only: a refusal counts toward `fall` like any failure
        http = CheckResult(False, http.reason, code=http.code)
    if not http.ok:
        # a dead or hung HAProxy fails every VIP; asking its stats socket would only cost another timeout
        if cache is not None:
            cache.forget()
        return {vip.prefix: http for vip in config.vips}
    backends: dict[str, Servers] | None = None
    stats_error = ""
    if any(vip.backend for vip in config.vips):
        now = time.monotonic()
        if cache is not None and len(config.vips) >= STATS_REUSE_VIPS:
            backends = cache.fresh(now, health.interval, health.timeout)
            if backends is not None:
                cache.forget()  # used once: the next loop reads again
        if backends is None:
            generation = cache.generation if cache is not None else 0
            backends, stats_error = read_backends(health.stats_socket, health.timeout)
            if cache is not None:
                cache.keep(backends, now, generation)
    return {vip.prefix: check_backend(backends, stats_error, vip) for vip in config.vips}
