"""What "healthy" means on a node: HAProxy answers its health URL, and enough backend servers are UP.

One HTTP check and at most one `show stat` per loop, shared by every VIP: the cost of the loop does not
grow with the number of VIPs. Both have a hard timeout, so a hung (SIGSTOPped) HAProxy is unhealthy
within `timeout`, not never.
"""

from __future__ import annotations

import csv
import io
import socket
from dataclasses import dataclass

import requests

from ober_health.config import VipConfig


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str


def check_http(session: requests.Session, url: str, timeout: float) -> CheckResult:
    """HAProxy's `monitor-uri` answers 200 while it is up and its `monitor fail` rule does not match."""
    try:
        # Connection: close - a kept-alive socket to an old worker would fail after a seamless reload
        response = session.get(url, timeout=timeout, headers={"Connection": "close"}, allow_redirects=False)
    except requests.Timeout:
        return CheckResult(False, f"{url} did not answer within {timeout:g}s")
    except requests.ConnectionError as exc:
        return CheckResult(False, f"{url} unreachable ({_short(exc)})")
    except requests.RequestException as exc:
        return CheckResult(False, f"{url} failed ({_short(exc)})")
    if response.status_code != 200:
        return CheckResult(False, f"{url} answered {response.status_code}")
    return CheckResult(True, f"{url} answered 200")


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "No such file", "timed out", "reset by peer"):
        if marker in text:
            return marker
    return text[:120]


def haproxy_command(path: str, command: str, timeout: float) -> str:
    """Send one command to HAProxy's stats socket and return the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """`show stat` CSV (header line starts with `# `) as a list of rows keyed by column name."""
    return list(csv.DictReader(io.StringIO(text.lstrip("# "))))


def up_servers(rows: list[dict[str, str]], backend: str) -> int | None:
    """Servers of `backend` that take traffic; None when HAProxy has no such backend.

    `UP`, `UP 1/2` (going down, still serving) and `no check` count; `DOWN`, `MAINT`, `DRAIN` and
    `NOLB` do not: those servers get no new requests.
    """
    found = False
    count = 0
    for row in rows:
        if row.get("pxname") != backend:
            continue
        found = True
        if row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        status = row.get("status", "")
        if status.startswith("UP") or status == "no check":
            count += 1
    return count if found else None


def check_backend(rows: list[dict[str, str]] | None, stats_error: str, vip: VipConfig) -> CheckResult:
    """A VIP with a `backend` needs `min_up` UP servers there; one without needs nothing more."""
    if vip.backend is None:
        return CheckResult(True, "no backend to count")
    if rows is None:
        return CheckResult(False, f"stats socket: {stats_error}")
    up = up_servers(rows, vip.backend)
    if up is None:
        return CheckResult(False, f"backend {vip.backend} not found in HAProxy")
    if up < vip.min_up:
        return CheckResult(False, f"backend {vip.backend} has {up} server(s) UP, needs {vip.min_up}")
    return CheckResult(True, f"backend {vip.backend} has {up} server(s) UP")


def read_stats(path: str, timeout: float) -> tuple[list[dict[str, str]] | None, str]:
    """`show stat` rows, or None and why not (socket missing, refused, hung HAProxy)."""
    try:
        return parse_show_stat(haproxy_command(path, "show stat", timeout)), ""
    except TimeoutError:
        return None, f"{path} did not answer within {timeout:g}s"
    except OSError as exc:
        return None, f"{path} unreachable ({exc.strerror or exc})"
