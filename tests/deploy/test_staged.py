"""Stage, validate, swap (ober_deploy.staged): a config only replaces the live one after the daemon's own
checker accepts it, and what decides is the LIVE file on the node.

Two levels, both with the real checkers:
- the shell that checks and swaps (`check_command`), run with `sh -c` as pyinfra runs it on a node: a
  rejected file leaves the live one byte for byte as it was and its reason reaches the operator; an
  accepted one is renamed into place and nothing stays staged;
- the pyinfra operation `staged.template`, run by the pyinfra CLI (`pyinfra -y @local deploy.py`, in a
  subprocess) on files in a temporary directory: an unchanged file is no change (no checker, no
  upload), a hand-edited or hand-broken live file is repaired through the checker, and a run after a
  rejected one changes nothing.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import stat
from pathlib import Path

import pytest

from lab.fleet import parse_pyinfra_output
from ober_deploy.staged import STAGED_SUFFIX, check_command
from ober_health.paths import PATHS
from tests.deploy.support import PYINFRA, REPO, VENV_BIN, run

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
    """The `check=` of every staged.template in tasks/*.py, by template, with this checkout's venv."""
    paths = dataclasses.replace(PATHS, venv=str(VENV_BIN.parent))
    checks = {}
    for path in sorted((REPO / "tasks").glob("*.py")):
        for call in ast.walk(ast.parse(path.read_text())):
            if isinstance(call, ast.Call) and ast.unparse(call.func) == "staged.template":
                keywords = {k.arg: k.value for k in call.keywords}
                template = ast.literal_eval(keywords["src"])
                # the checks name the venv being installed (`venv`); this checkout's stands in for it
                scope = {"PATHS": paths, "venv": str(VENV_BIN.parent)}
                checks[Path(template).name] = eval(ast.unparse(keywords["check"]), scope)  # f-string
    return checks


CHECKS = task_checks()
HAPROXY_CHECK = CHECKS["haproxy.cfg.j2"]


def swap(
    tmp: Path, staged_text: str, live_text: str | None, check: str, mode: int = 0o640, do_swap: bool = True
) -> tuple[int, str, Path]:
    """Put `live_text` at the live path and `staged_text` next to it, run the check; (exit code, output, dest)."""
    dest = tmp / "haproxy.cfg"
    staged = Path(str(dest) + STAGED_SUFFIX)
    if live_text is not None:
        dest.write_text(live_text)
        dest.chmod(0o644)
    staged.write_text(staged_text)
    staged.chmod(mode)
    result = run(["sh", "-c", check_command(str(dest), check, swap=do_swap)], cwd=tmp)
    return result.returncode, result.stdout + result.stderr, dest


def test_passing_checker_renames_the_staged_file_in_and_nothing_stays_staged(tmp_path: Path) -> None:
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, HAPROXY_LIVE, HAPROXY_CHECK)
    assert code == 0, output
    assert dest.read_text() == HAPROXY_GOOD
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640, "the live file gets the staged file's mode"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"]


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"], "the rejected copy is removed"
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


def test_without_swap_the_validated_copy_stays_staged_for_the_restart(tmp_path: Path) -> None:
    """swap=False (ExaBGP's files: they go live in the rolling restart, one node at a time)."""
    code, output, dest = swap(tmp_path, HAPROXY_GOOD, HAPROXY_LIVE, HAPROXY_CHECK, do_swap=False)
    assert code == 0, output
    assert dest.read_text() == HAPROXY_LIVE
    assert Path(str(dest) + STAGED_SUFFIX).read_text() == HAPROXY_GOOD
    code, output, dest = swap(tmp_path, HAPROXY_BROKEN, HAPROXY_LIVE, HAPROXY_CHECK, do_swap=False)
    assert code != 0 and "bogus-keyword" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"], "a rejected copy never waits for a swap"


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


# ---- the operation, run by pyinfra


DEPLOY = """
import json
from ober_deploy import staged

spec = json.load(open("spec.json"))
staged.template(name="config", src="config.j2", dest=spec["dest"], check=spec["check"], mode="640", swap=spec["swap"],
                body=spec["body"])
"""


class Node:
    """A live file in a temporary directory, deployed by `pyinfra -y @local deploy.py` with staged.template."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dest = root / "etc" / "haproxy.cfg"
        self.dest.parent.mkdir()
        self.checks = root / "checks.log"  # one line per run of the checker
        (root / "config.j2").write_text("{{ body }}")
        (root / "deploy.py").write_text(DEPLOY)

    @property
    def staged(self) -> Path:
        return Path(str(self.dest) + STAGED_SUFFIX)

    def checker_runs(self) -> int:
        return len(self.checks.read_text().splitlines()) if self.checks.exists() else 0

    def deploy(self, body: str, swap: bool = True) -> tuple[int, str, str]:
        """(exit code, output, what pyinfra reported for the operation: 'changed' / 'unchanged' / 'error')."""
        check = f"echo checked >> {self.checks} && {HAPROXY_CHECK}"
        spec = {"dest": str(self.dest), "check": check, "swap": swap, "body": body}
        (self.root / "spec.json").write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        result = run([PYINFRA, "-y", "@local", "deploy.py"], cwd=self.root, timeout=120, env=env)
        output = result.stdout + result.stderr
        changed, unchanged, errors = parse_pyinfra_output(output)
        outcome = "error" if errors else "changed" if changed else "unchanged" if unchanged else "?"
        return result.returncode, output, outcome


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


@pytest.mark.deploy
def test_first_run_puts_the_checked_render_live_and_a_second_run_changes_nothing(node: Node) -> None:
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "changed"), output
    assert node.dest.read_text() == HAPROXY_GOOD
    assert stat.S_IMODE(node.dest.stat().st_mode) == 0o640
    assert not node.staged.exists()
    assert node.checker_runs() == 1
    before = node.dest.stat()
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "unchanged"), output
    assert node.checker_runs() == 1, "an unchanged file is not even checked"
    assert (node.dest.stat().st_ino, node.dest.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.deploy
@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda text: text.replace("8080", "8090"), id="hand-edited"),
        pytest.param(lambda text: text + "this-keyword-does-not-exist on\n", id="hand-broken"),
    ],
)
def test_a_changed_live_file_is_repaired_through_the_checker(node: Node, edit: object) -> None:
    """The decision is made on the live file: a staged copy matching the render cannot hide a hand edit."""
    assert node.deploy(HAPROXY_GOOD)[0] == 0
    node.dest.write_text(edit(HAPROXY_GOOD))  # type: ignore[operator]
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "changed"), output
    assert node.dest.read_text() == HAPROXY_GOOD
    assert node.checker_runs() == 2, "the repair went through the checker"
    assert not node.staged.exists()


@pytest.mark.deploy
def test_owner_and_mode_of_the_live_file_are_part_of_the_comparison(node: Node) -> None:
    assert node.deploy(HAPROXY_GOOD)[0] == 0
    node.dest.chmod(0o666)
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "changed"), output
    assert stat.S_IMODE(node.dest.stat().st_mode) == 0o640


@pytest.mark.deploy
def test_a_rejected_render_changes_nothing_and_the_next_good_run_reports_no_change(node: Node) -> None:
    assert node.deploy(HAPROXY_GOOD)[0] == 0
    before = node.dest.stat()
    code, output, outcome = node.deploy(HAPROXY_BROKEN)
    assert code != 0 and outcome == "error", output
    assert "unknown keyword 'bogus-keyword'" in output
    assert node.dest.read_text() == HAPROXY_GOOD and node.dest.stat().st_ino == before.st_ino
    assert not node.staged.exists()
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "unchanged"), output  # (so HAProxy is not reloaded for nothing)
    assert node.checker_runs() == 2, "the good render equals the live file: no check, no swap"


@pytest.mark.deploy
def test_a_staged_copy_left_by_an_interrupted_run_is_removed_never_swapped_in(node: Node) -> None:
    assert node.deploy(HAPROXY_GOOD)[0] == 0
    node.staged.write_text(HAPROXY_BROKEN)
    code, output, outcome = node.deploy(HAPROXY_GOOD)
    assert (code, outcome) == (0, "changed"), output
    assert node.dest.read_text() == HAPROXY_GOOD
    assert not node.staged.exists()


@pytest.mark.deploy
def test_without_swap_the_operation_leaves_the_checked_copy_staged(node: Node) -> None:
    code, output, outcome = node.deploy(HAPROXY_GOOD, swap=False)
    assert (code, outcome) == (0, "changed"), output
    assert not node.dest.exists()
    assert node.staged.read_text() == HAPROXY_GOOD
    assert node.checker_runs() == 1
