"""The wheel set (ober_deploy.wheels): built once per run under pyinfra's greenlets, named by content.

- the cache lock's wait yields to other greenlets (a blocking `flock` under gevent stalled every host:
  the first fleet deploy with an empty cache hung for ever);
- `pyinfra -y --dry` over three hosts with an empty cache and an index (a local wheelhouse, as the lab's
  controller has) finishes, builds once, prints one progress line, leaves no `build-*` directory;
- with no index, the run stops before any host is touched with an error that says what to do
  (`python -m ober_deploy.wheels DIR`, `ober_wheels_dir`);
- what decides an install is the wheels' content: the digest changes with any byte of any wheel, and
  ober_health's version carries the hash of its source.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.wheelhouse import ensure_wheelhouse, index_env
from ober_deploy import wheels
from ober_deploy.wheels import BUILD_PREFIX, WheelSet
from tests.deploy.support import PYINFRA, REPO, tool_chroot
from tests.deploy.test_pyinfra_cli import GOOD, write_inventory

LOCK_UNDER_GEVENT = r"""
import sys, time
from gevent import monkey
monkey.patch_all()
import gevent
from pathlib import Path
from ober_deploy.locking import locked

path = Path(sys.argv[1])
ticks = []
order = []

def holder():
    with locked(path):
        order.append("holder in")
        time.sleep(0.5)  # gevent's sleep: e.g. waiting for pip's subprocess
        order.append("holder out")

def waiter():
    time.sleep(0.05)
    with locked(path, waiting=lambda: order.append("waiting")):
        order.append("waiter in")

def ticker():
    for _ in range(20):
        ticks.append(time.monotonic())
        time.sleep(0.05)

gevent.joinall([gevent.spawn(holder), gevent.spawn(waiter), gevent.spawn(ticker)], timeout=10)
print(order, len(ticks))
"""


def test_waiting_for_the_cache_lock_lets_the_other_greenlets_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOCK_UNDER_GEVENT, str(tmp_path / "lock")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['holder in', 'waiting', 'holder out', 'waiter in'] 20", result.stdout


def fake_set(directory: Path, contents: dict[str, bytes]) -> WheelSet:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return WheelSet.read(directory)


def test_the_digest_follows_the_wheels_content_not_their_names(tmp_path: Path) -> None:
    names = {"ober_health-0.1.0-py3-none-any.whl": b"code", "exabgp-5.0.15-py3-none-any.whl": b"exabgp"}
    one = fake_set(tmp_path / "one", names)
    same = fake_set(tmp_path / "same", names)
    changed = fake_set(tmp_path / "changed", {**names, "ober_health-0.1.0-py3-none-any.whl": b"new code"})
    assert one.digest == same.digest
    assert changed.digest != one.digest and changed.names == one.names
    assert one.version == "0.1.0"
    assert one.requirements("/opt/ober/wheels/").splitlines() == [f"/opt/ober/wheels/{n}" for n in sorted(names)]


def test_a_set_without_exactly_one_ober_health_wheel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(wheels.WheelError, match="expected one ober_health wheel"):
        fake_set(tmp_path, {"exabgp-5.0.15-py3-none-any.whl": b"exabgp"})


def test_the_version_carries_the_hash_of_the_node_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "checkout"
    shutil.copytree(REPO / "ober_health", source / "ober_health", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    monkeypatch.setattr(wheels, "REPO", source)
    before = wheels.build_version()
    assert before == f"0.1.0+{wheels.source_key()}"
    (source / "README.md").write_text("a README edit is not a new node version\n")
    assert wheels.build_version() == before
    with (source / "ober_health" / "cli.py").open("a") as cli:
        cli.write("# a comment is new node code all the same\n")
    assert wheels.build_version() != before


# ---- the pyinfra CLI with an empty wheel cache


def dry_deploy(tmp_path: Path, env: dict[str, str], hosts: list[tuple[str, dict[str, object]]]) -> tuple[int, str]:
    inventory = write_inventory(tmp_path / "inventory.py", hosts)
    argv = [PYINFRA, "-y", "--dry", str(inventory), "deploy.py"]
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.deploy
def test_without_an_index_the_run_stops_before_any_host_and_says_what_to_do(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = index_env(tmp_path / "no-wheels-here", os.environ) | {"OBER_WHEEL_CACHE": str(cache)}
    code, output = dry_deploy(tmp_path, env, [("@local", GOOD)])
    assert code != 0, output
    assert "no wheel set for the nodes, nothing was changed" in output
    assert "No matching distribution found for setuptools" in output, "pip's own reason"
    assert "python -m ober_deploy.wheels DIR" in output and "ober_wheels_dir" in output
    assert "Starting operation" not in output and "Traceback" not in output
    assert [p.name for p in cache.iterdir() if p.name.startswith(BUILD_PREFIX)] == []


@pytest.mark.deploy
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot"), reason="the @chroot connector needs root")
def test_three_hosts_and_an_empty_cache_build_the_wheels_once_and_do_not_hang(tmp_path: Path) -> None:
    """The hosts are directories with nothing but `ls` (pyinfra's @chroot connect): the plan fails at the
    first fact, after the build. What matters is that the build happens once and the run ends."""
    cache = tmp_path / "cache"
    (cache / f"{BUILD_PREFIX}killed").mkdir(parents=True)  # what a killed build left behind
    env = index_env(ensure_wheelhouse(), os.environ) | {"OBER_WHEEL_CACHE": str(cache)}
    hosts = [(f"@chroot/{tool_chroot(tmp_path / f'node{i}', ['ls'])}", GOOD) for i in range(3)]
    code, output = dry_deploy(tmp_path, env, hosts)
    assert output.count("--> building the wheels the nodes install") == 1, output
    assert "--> wheels built in" in output, output
    built = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert [p.name for p in built] == [wheels.source_key()], "one set, and no build-* directory"
    assert WheelSet.read(built[0]).version == wheels.build_version()
    assert code != 0  # the first fact fails in a directory without a shell: the run ended, it did not hang
