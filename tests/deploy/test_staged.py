"""Stage, validate, swap (ober_deploy.staged.swap_command), run with `sh -c` as pyinfra runs it on a node.

A config only replaces the live one after the daemon's own checker accepts it; a rejected one leaves the
live file byte for byte as it was, is removed (so the next run checks again), and its reason reaches the
operator. The checkers are the real ones, with the check strings read from tasks/*.py.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import stat
from pathlib import Path

import pytest

from ober_deploy.paths import PATHS
from ober_deploy.staged import STAGED_SUFFIX, swap_command
from tests.deploy.support import REPO, VENV_BIN, run

HAPROXY_GOOD = """\
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend s3
    bind 127.0.0.1:8080
    default_backend be_rgw
backend be_rgw
    server rgw1 127.0.0.1:7480
"""
HAPROXY_LIVE = "# the live config, before this deploy\n" + HAPROXY_GOOD.replace("8080", "8081")
HAPROXY_BROKEN = HAPROXY_GOOD.replace("    default_backend", "    bogus-keyword on\n    default_backend")


def task_checks() -> dict[str, str]:
    """The `check=` of every staged_template in tasks/*.py, by template, with this checkout's venv."""
    paths = dataclasses.replace(PATHS, venv=str(VENV_BIN.parent))
    checks = {}
    for path in sorted((REPO / "tasks").glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if isinstance(call, ast.Call) and ast.unparse(call.func) == "staged_template":
                check = next(k.value for k in call.keywords if k.arg == "check")
                template = ast.literal_eval(call.args[1])
                checks[Path(template).name] = eval(ast.unparse(check), {"PATHS": paths})  # f-string of PATHS
    return checks


CHECKS = task_checks()
HAPROXY_CHECK = CHECKS["haproxy.cfg.j2"]


def swap(tmp: Path, staged_text: str, live_text: str | None, check: str, mode: int = 0o640) -> tuple[int, str, Path]:
    """Put `live_text` at the live path and `staged_text` next to it, run the swap; (exit code, stderr, dest)."""
    dest = tmp / "haproxy.cfg"
    staged = Path(str(dest) + STAGED_SUFFIX)
    if live_text is not None:
        dest.write_text(live_text)
        dest.chmod(0o644)
    staged.write_text(staged_text)
    staged.chmod(mode)
    result = run(["sh", "-c", swap_command(str(staged), str(dest), check)], cwd=tmp)
    return result.returncode, result.stdout + result.stderr, dest


def test_passing_checker_swaps_the_staged_file_in_and_keeps_it_staged(tmp_path: Path) -> None:
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, HAPROXY_LIVE, HAPROXY_CHECK)
    assert code == 0, output
    assert dest.read_text() == HAPROXY_GOOD
    staged = Path(str(dest) + STAGED_SUFFIX)
    assert staged.read_text() == HAPROXY_GOOD, "kept: an unchanged render is no change on the next run"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640, "the live file gets the staged file's mode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg", "haproxy.cfg.ober-new"]


def test_the_swap_is_a_rename_never_an_in_place_write(tmp_path: Path) -> None:
    """A reader (HAProxy's master re-reading its config) holding the old file sees the old file whole:
    the live name is renamed over, the old inode is not rewritten."""
    dest = tmp_path / "haproxy.cfg"
    dest.write_text(HAPROXY_LIVE)
    before = dest.stat().st_ino
    with dest.open() as reader:
        code, output, _ = swap(tmp_path, HAPROXY_GOOD, None, HAPROXY_CHECK)
        assert code == 0, output
        assert reader.read() == HAPROXY_LIVE
    assert dest.stat().st_ino != before
    assert dest.read_text() == HAPROXY_GOOD


def test_failing_checker_leaves_the_live_file_and_says_why(tmp_path: Path) -> None:
    dest = tmp_path / "haproxy.cfg"
    dest.write_bytes(HAPROXY_LIVE.encode())
    dest.chmod(0o644)
    os.utime(dest, (1_700_000_000, 1_700_000_000))
    before = dest.stat()
    code, output, _ = swap(tmp_path, HAPROXY_BROKEN, None, HAPROXY_CHECK)
    assert code != 0
    assert dest.read_bytes() == HAPROXY_LIVE.encode()
    after = dest.stat()
    assert (after.st_ino, after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (
        before.st_ino,
        before.st_mtime_ns,
        0o644,
    )
    assert not Path(str(dest) + STAGED_SUFFIX).exists(), "removed, so the next run checks again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"]
    assert f"{dest}: the new version failed validation, the live file is unchanged:" in output
    assert "unknown keyword 'bogus-keyword'" in output  # HAProxy's own reason, with the line
    assert "haproxy.cfg.ober-new:" in output


def test_haproxy_quiet_check_would_hide_the_reason(tmp_path: Path) -> None:
    """`haproxy -c -q` fails the same way but prints nothing: the deploy's check must not be quiet."""
    code, output, dest = swap(tmp_path, HAPROXY_BROKEN, HAPROXY_LIVE, "haproxy -c -q -f {staged}")
    assert code != 0
    assert dest.read_text() == HAPROXY_LIVE
    assert "bogus-keyword" not in output
    assert " -q" not in HAPROXY_CHECK and HAPROXY_CHECK.startswith("haproxy -c -f ")


def test_quiet_check_still_swaps_a_good_config(tmp_path: Path) -> None:
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, HAPROXY_LIVE, "haproxy -c -q -f {staged}")
    assert code == 0, output
    assert dest.read_text() == HAPROXY_GOOD


def test_first_deploy_creates_the_live_file(tmp_path: Path) -> None:
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, None, HAPROXY_CHECK)
    assert code == 0, output
    assert dest.read_text() == HAPROXY_GOOD


def test_first_deploy_with_a_broken_config_creates_nothing(tmp_path: Path) -> None:
    code, _, _ = swap(tmp_path, HAPROXY_BROKEN, None, HAPROXY_CHECK)
    assert code != 0
    assert list(tmp_path.iterdir()) == []


def test_a_missing_checker_is_a_failed_check(tmp_path: Path) -> None:
    """A venv without exabgp must not let an unchecked config through."""
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, HAPROXY_LIVE, "/nonexistent/bin/exabgp validate {staged}")
    assert code != 0
    assert dest.read_text() == HAPROXY_LIVE
    assert "/nonexistent/bin/exabgp" in output


def test_paths_with_spaces_are_quoted(tmp_path: Path) -> None:
    directory = tmp_path / "etc dir"
    directory.mkdir()
    code, output, dest = swap(directory, HAPROXY_GOOD, HAPROXY_LIVE, HAPROXY_CHECK)
    assert code == 0, output
    assert dest.read_text() == HAPROXY_GOOD
    code, output, dest = swap(directory, HAPROXY_BROKEN, HAPROXY_GOOD, HAPROXY_CHECK)
    assert code != 0
    assert dest.read_text() == HAPROXY_GOOD


EXABGP_GOOD = """\
neighbor 198.51.100.1 {
    router-id 198.51.100.11;
    local-address 198.51.100.11;
    local-as 65001;
    peer-as 65000;
    family {
        ipv4 unicast;
    }
}
"""
HEALTH_GOOD = '[health]\ninterval = 0.2\n\n[[vip]]\nprefix = "203.0.113.10/32"\n'

# template -> (a file its checker accepts, one it rejects, a word of the rejection)
SAMPLES = {
    "haproxy.cfg.j2": (HAPROXY_GOOD, HAPROXY_BROKEN, "bogus-keyword"),
    "exabgp.conf.j2": (EXABGP_GOOD, EXABGP_GOOD.replace("peer-as 65000", "peer-as x"), "peer-as"),
    "health.toml.j2": (HEALTH_GOOD, HEALTH_GOOD.replace("203.0.113.10/32", "203.0.113.300/32"), "203.0.113.300"),
}


def test_every_staged_file_of_the_tasks_has_a_sample_here() -> None:
    assert sorted(CHECKS) == sorted(SAMPLES)


@pytest.mark.parametrize("template", sorted(SAMPLES))
def test_each_task_checker_swaps_the_good_and_refuses_the_broken(template: str, tmp_path: Path) -> None:
    good, bad, word = SAMPLES[template]
    live = "# live\n" + good
    code, output, dest = swap(tmp_path, bad, live, CHECKS[template])
    assert code != 0
    assert dest.read_text() == live
    assert word in output, output
    code, output, dest = swap(tmp_path, good, live, CHECKS[template])
    assert code == 0, output
    assert dest.read_text() == good
