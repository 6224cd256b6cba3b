"""The health program's state: one schema for its writer (ober-health) and its readers (`ober`, the deploy).

ober-health writes it atomically after every check loop (temp file in the same directory + `os.replace`, so a
reader never sees half a file) and serves the same JSON on its loopback status endpoint, so that a state
directory that cannot be written never turns into "not running". `updated_at` and the writer's pid let a
reader tell a stale state (health program hung or gone) from a fresh one.

The TypedDicts below are the schema: mypy holds the writer and the readers to it, `validate_state` holds a
file read from disk to it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

STATE_VERSION = 2


class VipState(TypedDict):
    state: Literal["announced", "withdrawn"]  # what this node tells ExaBGP
    since: float | None  # when it last changed (or was adopted from ExaBGP's adj-rib-out)
    last_ok: bool | None  # the last check's verdict
    reason: str  # the last check's words
    checked_at: float | None
    good_streak: int
    bad_streak: int
    announces: int
    withdraws: int
    command: str | None  # the last command sent for it ("announce"/"withdraw"), None if none yet
    acked: bool | None  # ExaBGP answered it: True `done` (or its adj-rib-out agrees), False `error`, None waiting
    held_by: list[str]  # peers whose adj-rib-out held it at the last read
    failures: dict[str, int]  # failed checks since start, by cause (checks.FAILURE_CODES)


class SessionState(TypedDict):
    state: str  # established | down | unknown (no word from ExaBGP yet)
    since: float | None
    reason: str  # why not established, in words ("" when established)
    asn: int | None  # the configured peer AS; None: not in health.toml
    configured: bool
    family: int  # 4 or 6: the VIPs it can carry


class ExabgpState(TypedDict):
    answering: bool  # False: a command waited longer than `timeout` (ExaBGP hung: watchdog triggered)
    problem: str
    unanswered: int  # commands ExaBGP has not answered yet
    oldest_unanswered: float | None  # seconds the oldest of them has waited
    timeout: float  # the bound: past it, ExaBGP counts as hung
    rib_read_at: float | None  # the last `show adj-rib out` answer
    reconciled: str  # how this process started: what it found in ExaBGP's adj-rib-out


class CheckTimes(TypedDict):
    """How long the check rounds took since start, as a histogram (metrics.DURATION_BUCKETS)."""

    count: int
    sum: float
    buckets: list[int]  # rounds per bucket (not cumulative), one more than the bounds: the last is +Inf
    last: float | None  # the last round's duration


class State(TypedDict):
    version: int
    program: str
    pid: int
    config: str  # the absolute path of the health.toml it runs with (a reader checks it is its own)
    started_at: float
    updated_at: float
    round_started_at: float | None  # when the last check loop began (it read the drain files then)
    interval: float
    loops: int
    phase: str  # reconciling | running | stopping
    drained: bool
    drain_reason: str
    stopping: bool
    state_file_error: str  # why the state file could not be written ("" when it could)
    exabgp: ExabgpState
    sessions: dict[str, SessionState]
    vips: dict[str, VipState]
    checks: CheckTimes


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "version": int,
    "pid": int,
    "config": str,
    "updated_at": (int, float),
    "interval": (int, float),
    "loops": int,
    "drained": bool,
    "drain_reason": str,
    "stopping": bool,
    "exabgp": dict,
    "sessions": dict,
    "vips": dict,
}


def encode(state: State) -> bytes:
    """One line of compact JSON: without `indent`, `json` uses its C encoder (at 1000 VIPs 4 ms instead of
    20 ms, five times a second); `jq .` or `ober status --json` print it for people."""
    return (json.dumps(state, sort_keys=True, separators=(",", ":")) + "\n").encode()


def validate_state(data: Any, where: str) -> State:
    """`data` as a State, or ValueError naming what is wrong (an old version, a missing key, a bad type)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not an ober state (a JSON object)")
    if data.get("version") != STATE_VERSION:
        raise ValueError(
            f"{where}: not an ober state file of version {STATE_VERSION} (version {data.get('version')!r})"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(data.get(key), kind) or (kind is int and isinstance(data.get(key), bool)):
            raise ValueError(f"{where}: {key} is missing or not a {getattr(kind, '__name__', kind)}")
    for prefix, vip in data["vips"].items():
        if not isinstance(vip, dict) or vip.get("state") not in ("announced", "withdrawn"):
            raise ValueError(f"{where}: vips[{prefix!r}] is not a VIP state")
    for address, session in data["sessions"].items():
        if not isinstance(session, dict) or not isinstance(session.get("state"), str):
            raise ValueError(f"{where}: sessions[{address!r}] is not a session state")
    return cast(State, data)


def write_state(path: Path, state: State) -> None:
    """Atomically replace `path` with `state` as JSON (mode 0644: operators read it unprivileged)."""
    write_bytes(path, encode(state))


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> State:
    """The last state written; raises OSError when unreadable, ValueError when not a state of this version."""
    return validate_state(json.loads(path.read_text(encoding="utf-8")), str(path))
