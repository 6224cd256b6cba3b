"""Everything an air-gapped site installs ober from, gathered in one directory on a machine with an index.

An air-gapped controller has no package index, and its nodes never have one. Two sets of wheels reach them:
- `controller/`: pyinfra, jinja2, python-hostlist and what they need (compiled ones included, for this
  machine's Python and platform: run it on the controller's OS and architecture; sdist-only ones such
  as python-hostlist built into wheels here), plus the build
  requirements (setuptools, wheel) pip needs to install this checkout without an index;
- `nodes/`: the node set the deploy uploads (`ober_deploy.wheels`: ober_health built from this checkout,
  exabgp and requests as pure-Python wheels).

    python -m ober_deploy.airgap DIR

prints the commands that install the controller from DIR/controller and point the deploy at DIR/nodes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from ober_deploy.wheels import REPO, WheelError, build_requirements, ensure_wheels

CONTROLLER = "controller"
NODES = "nodes"
EXTRA = "deploy"  # the pyproject extra a controller installs
PIP_TIMEOUT = 900.0


def controller_requirements() -> list[str]:
    """The controller's runtime requirements: pyproject's `deploy` extra and the node package's own pins."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][EXTRA]]


def gather(target: Path) -> tuple[Path, Path]:
    """Fill `target/controller` and `target/nodes`; returns both directories."""
    controller, nodes = target / CONTROLLER, target / NODES
    controller.mkdir(parents=True, exist_ok=True)
    nodes.mkdir(parents=True, exist_ok=True)
    # `pip wheel`, not `download`: python-hostlist is published as an sdist only, and an offline install
    # must not need to build anything but this checkout
    _pip("wheel", "--prefer-binary", "-w", str(controller), *controller_requirements(), *build_requirements())
    for wheel in ensure_wheels().iterdir():
        shutil.copy(wheel, nodes / wheel.name)
    return controller, nodes


def instructions(controller: Path, nodes: Path) -> str:
    """What the operator runs on the air-gapped controller, from a copy of the checkout and of the directory."""
    return (
        "On the air-gapped controller (same OS release and architecture as this machine), in the checkout:\n"
        f"    python3 -m venv .venv\n"
        f"    .venv/bin/pip install --no-index --find-links {controller} '.[{EXTRA}]'\n"
        "and in the inventory or group_data/all.py:\n"
        f'    ober_wheels_dir = "{nodes}"\n'
    )


def _pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise WheelError(f"`pip {args[0]}` did not finish within {PIP_TIMEOUT:g}s") from None
    if result.returncode != 0:
        raise WheelError(f"`pip {' '.join(args[:2])} ...` failed:\n{(result.stderr or result.stdout).strip()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ober_deploy.airgap",
        description="Gather every wheel an air-gapped controller and its nodes install ober from.",
    )
    parser.add_argument("directory", type=Path, help="where to put controller/ and nodes/")
    args = parser.parse_args(argv)
    try:
        controller, nodes = gather(args.directory.resolve())
    except WheelError as error:
        print(f"ober_deploy.airgap: {error}", file=sys.stderr)
        return 1
    print(instructions(controller, nodes), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
