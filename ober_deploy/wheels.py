"""The wheels a node installs ober from: built or downloaded once on the controller, uploaded by the deploy.

Nodes never reach a package index (air-gapped sites, and the lab's nodes have no route out). The
controller builds the `ober_health` wheel from this checkout and downloads pure-Python wheels of its
dependencies (exabgp, requests, ...), so the same set installs on Debian's and RHEL's Python alike.
The set is cached under `.cache/wheels/<key>`, keyed by the source it was built from: a re-run of the
deploy uploads byte-identical files and changes nothing. Sites without any index point
`ober_wheels_dir` at a directory holding the same files (`python -m ober_deploy.wheels DIR` makes one).

    python -m ober_deploy.wheels            # build the cache now (the lab does this before its deploys)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from ober_deploy.locking import locked

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OBER_WHEEL_CACHE", str(REPO / ".cache" / "wheels")))
REQUIREMENTS_NAME = "requirements.txt"


def _source_files() -> list[Path]:
    return sorted([REPO / "pyproject.toml", *(REPO / "ober_health").glob("*.py")])


def source_key() -> str:
    """Hash of everything the wheel set is made from (code, metadata, the dependency pins)."""
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def wheel_names(wheel_dir: Path) -> list[str]:
    """The wheel files of a set, sorted: what is uploaded and what pip installs (no index, no resolution)."""
    return sorted(p.name for p in wheel_dir.glob("*.whl"))


def requirements_text(wheel_dir: Path, prefix: str = "") -> str:
    """A pip requirements file naming every wheel of the set, as `prefix/name` (`prefix` = where it lies)."""
    return "".join(f"{prefix}{name}\n" for name in wheel_names(wheel_dir))


def ensure_wheels(log: bool = True) -> Path:
    """The cached wheel set for this checkout, built if missing; returns its directory."""
    target = CACHE / source_key()
    if (target / REQUIREMENTS_NAME).exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with locked(CACHE / ".lock"):
        if (target / REQUIREMENTS_NAME).exists():
            return target
        work = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
        try:
            _build(work, log)
            (work / REQUIREMENTS_NAME).write_text(requirements_text(work))
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _build(out: Path, log: bool) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    with tempfile.TemporaryDirectory() as build:
        # build from a copy: setuptools leaves build/ and *.egg-info behind in the source tree
        source = Path(build) / "src"
        shutil.copytree(REPO / "ober_health", source / "ober_health")
        shutil.copy(REPO / "pyproject.toml", source)
        shutil.copy(REPO / "README.md", source)
        _run([*pip, "wheel", "--no-deps", "-w", str(out), str(source)], env, log)
    # pure-Python wheels only: they install on any node's Python >= 3.11 without a compiler
    _run(
        [
            *pip,
            "download",
            "--only-binary=:all:",
            "--platform=any",
            "--implementation=py",
            "--abi=none",
            "--python-version=3.11",
            "-d",
            str(out),
            *dependencies(),
        ],
        env,
        log,
    )


def _run(argv: list[str], env: dict[str, str], log: bool) -> None:
    if log:
        print(f"[wheels] {' '.join(argv[2:6])} ...", file=sys.stderr, flush=True)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"building ober's wheels failed: {' '.join(argv)}\n{result.stderr[-3000:]}")


def main() -> None:
    """`python -m ober_deploy.wheels [DIR]`: build the set (and copy it to DIR for an offline controller)."""
    wheels = ensure_wheels()
    if len(sys.argv) > 1:
        dest = Path(sys.argv[1])
        dest.mkdir(parents=True, exist_ok=True)
        for path in wheels.iterdir():
            shutil.copy(path, dest / path.name)
        wheels = dest
    print(wheels)


if __name__ == "__main__":
    main()
