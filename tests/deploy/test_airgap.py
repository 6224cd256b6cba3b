"""The air-gapped install path the README documents, run as an operator runs it.

On a machine with an index: `python -m ober_deploy.airgap DIR`. Then, on a machine with no network at all
(here: a fresh network namespace with only a down loopback), from a copy of the checkout: a venv, `pip
install --no-index --find-links DIR/controller '.[deploy]'`, and pyinfra and ober's controller code work;
DIR/nodes is a wheel set the deploy accepts as `ober_wheels_dir`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ober_deploy.wheels import WheelSet, build_version
from tests.deploy.support import REPO

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")


def _checkout_copy(dest: Path) -> Path:
    """The files of this checkout (as git tracks them), without its venv, caches or build output."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _offline(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` in a new network namespace (no route anywhere), with none of this machine's pip settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return subprocess.run(
        ["unshare", "--net", "sh", "-ec", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_air_gapped_controller_installs_from_the_gathered_directory(tmp_path: Path) -> None:
    gathered = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "ober_deploy.airgap", str(gathered)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"--find-links {gathered / 'controller'}" in result.stdout
    assert f'ober_wheels_dir = "{gathered / "nodes"}"' in result.stdout

    nodes = WheelSet.read(gathered / "nodes")
    assert nodes.version == build_version()

    checkout = _checkout_copy(tmp_path / "ober")
    controller = shlex.quote(str(gathered / "controller"))
    installed = _offline(
        f"python3 -m venv .venv\n"
        f".venv/bin/pip install -q --disable-pip-version-check --no-index --find-links {controller} '.[deploy]'\n"
        ".venv/bin/pyinfra --version\n"
        ".venv/bin/python -c 'import hostlist, jinja2, ober_deploy.settings; print(\"imports ok\")'\n"
        "ip -o link | grep -v ' lo:' | wc -l\n",
        checkout,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    lines = installed.stdout.split()
    assert "imports ok" in installed.stdout
    assert lines[-1] == "0", "the install ran where a network existed"
