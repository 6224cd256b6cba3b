"""The state file `ober status` reads: atomic replacement, a version, one schema, clear failures when missing,
corrupt or of another shape."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest

from ober_health.statefile import STATE_VERSION, State, read_state, validate_state, write_state


def sample(**changes: Any) -> State:
    """A complete state as ober-health writes it (the schema's every key), with `changes` applied."""
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "program": "ober-health test",
        "pid": 42,
        "config": "/etc/ober/health.toml",
        "started_at": 1000.0,
        "updated_at": 1001.0,
        "round_started_at": 1000.9,
        "interval": 0.2,
        "loops": 5,
        "phase": "running",
        "drained": False,
        "drain_reason": "",
        "stopping": False,
        "state_file_error": "",
        "exabgp": {
            "answering": True,
            "problem": "",
            "unanswered": 0,
            "oldest_unanswered": None,
            "timeout": 9.0,
            "rib_read_at": 1000.5,
            "reconciled": "ExaBGP's adj-rib-out held 0 of 1 VIP(s)",
        },
        "sessions": {
            "198.51.100.1": {
                "state": "established",
                "since": 990.0,
                "reason": "",
                "asn": 65000,
                "configured": True,
                "family": 4,
            }
        },
        "vips": {
            "203.0.113.10/32": {
                "state": "announced",
                "since": 995.0,
                "last_ok": True,
                "reason": "ok",
                "checked_at": 1000.9,
                "good_streak": 9,
                "bad_streak": 0,
                "announces": 1,
                "withdraws": 0,
                "command": "announce",
                "acked": True,
                "held_by": ["198.51.100.1"],
            }
        },
    }
    state.update(changes)
    return validate_state(state, "sample")


# A writer in another process (real concurrency, not threads taking turns on the GIL): `count` states of
# ~20 KB each, every one carrying its sequence number twice (first and last key) so a torn file shows.
_WRITER = """
import json, os, sys
from pathlib import Path
from ober_health.statefile import write_state
path, count, atomic, base = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "atomic", json.loads(sys.argv[4])
padding = "x" * 20_000
for seq in range(count):
    state = {**base, "a_seq": seq, "padding": padding, "z_seq": seq}
    if atomic:
        write_state(path, state)
    else:  # what write_state must not be: rewriting the file in place
        with open(path, "w") as handle:
            handle.write(json.dumps(state, sort_keys=True))
"""


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = sample()
    write_state(path, state)
    assert read_state(path) == state
    assert json.loads(path.read_text()) == state  # plain JSON, for jq and for operators


def test_replaces_the_previous_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, sample(loops=1))
    write_state(path, sample(loops=2))
    assert read_state(path)["loops"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_creates_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "run" / "ober" / "state.json"
    write_state(path, sample())
    assert read_state(path) == sample()


def test_readable_by_everyone_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = os.umask(0o077)
    try:
        write_state(path, sample())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_state_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, sample(loops=1))
    with pytest.raises(TypeError):
        write_state(path, cast(State, {**sample(), "bad": object()}))
    assert read_state(path)["loops"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("pid", "42", "pid is missing or not a int"),
        ("loops", True, "loops is missing or not a int"),
        ("vips", [], "vips is missing or not a dict"),
        ("sessions", None, "sessions is missing or not a dict"),
        ("vips", {"203.0.113.10/32": {"state": "up"}}, "vips['203.0.113.10/32'] is not a VIP state"),
        ("sessions", {"198.51.100.1": "up"}, "sessions['198.51.100.1'] is not a session state"),
        ("version", 1, "not an ober state file of version 2 (version 1)"),
    ],
)
def test_a_state_of_another_shape_is_refused_naming_the_key(key: str, value: Any, expected: str) -> None:
    data = dict(sample())
    data[key] = value
    with pytest.raises(ValueError, match=re.escape(expected)):
        validate_state(data, "where")


def test_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        read_state(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"version": 1, "vips": {',
        b"not json at all",
        b"\xff\xfe\x00",
        b"[1, 2]",
        b'"version"',
        b"{}",
        b'{"version": 2}',
        b'{"version": "1"}',
        b'{"version": 1, "pid": 42, "vips": {}}',  # the schema before sessions and acks
        b"null",
    ],
)
def test_corrupt_or_foreign_file_is_a_valueerror(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ValueError):
        read_state(path)


def _hammer(tmp_path: Path, atomic: bool, count: int) -> tuple[int, int, list[str]]:
    """Read `path` in a loop while another process writes it; (reads, distinct states seen, problems)."""
    path = tmp_path / "state.json"
    base = dict(sample())
    write_state(path, sample(a_seq=-1, z_seq=-1))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    mode = "atomic" if atomic else "in-place"
    argv = [sys.executable, "-c", _WRITER, str(path), str(count), mode, json.dumps(base)]
    writer = subprocess.Popen(argv, env=env)
    reads, seen, problems, last = 0, set(), [], -1
    deadline = time.monotonic() + 30
    try:
        while writer.poll() is None and time.monotonic() < deadline:
            try:
                state = read_state(path)
            except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                problems.append(f"read {reads}: {str(exc)[:80]}")
            else:
                extra: dict[str, Any] = dict(state)
                if extra["a_seq"] != extra["z_seq"]:
                    problems.append(f"read {reads}: torn: {extra['a_seq']} / {extra['z_seq']}")
                if extra["a_seq"] < last:
                    problems.append(f"read {reads}: went back from {last} to {extra['a_seq']}")
                last = extra["a_seq"]
                seen.add(extra["a_seq"])
            reads += 1
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=5)
    assert writer.returncode == 0, "the writer failed or did not finish in 30 s"
    return reads, len(seen), problems


def test_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    reads, distinct, problems = _hammer(tmp_path, atomic=True, count=2000)
    assert problems == []
    assert dict(read_state(tmp_path / "state.json"))["a_seq"] == 1999
    # the reads overlapped the writes: many reads, of many different states
    assert reads >= 200 and distinct >= 50, (reads, distinct)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_reader_loop_does_catch_an_in_place_writer(tmp_path: Path) -> None:
    """Control: the check above is able to fail - a writer that rewrites the file in place is caught."""
    _, _, problems = _hammer(tmp_path, atomic=False, count=2000)
    assert problems, "an in-place writer went unnoticed: the atomicity test would prove nothing"
