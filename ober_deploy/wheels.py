"""The wheels a node installs ober from: built or downloaded once on the controller, uploaded by the deploy.

Nodes never reach a package index (air-gapped sites, and the lab's nodes have no route out). The
controller builds the `ober_health` wheel from this checkout and downloads pure-Python wheels of its
dependencies (exabgp, requests, ...), so the same set installs on Debian's and RHEL's Python alike.

The set is cached under `.cache/wheels/<key>`, keyed by the source it was built from, and ober_health's
version carries the same key as a local version label (`0.1.0+<key>`): any change to the node code is
a new version that `ober --version` shows on the node, and a new set whose content hash (`WheelSet.digest`)
names the venv the node installs it into. A re-run of the deploy uploads byte-identical files and changes
nothing. Sites without any index point `ober_wheels_dir` at a directory holding the same files:

    python -m ober_deploy.wheels DIR     # build (or reuse) the set here, copy it to DIR
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ober_deploy.locking import locked

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("OBER_WHEEL_CACHE", str(REPO / ".cache" / "wheels")))
REQUIREMENTS_NAME = "requirements.txt"
BUILD_PREFIX = "build-"
DISTRIBUTION = "ober_health"
PIP_TIMEOUT = 900.0  # one pip run; an index that accepts connections but never answers must not hang a deploy
OFFLINE_HINT = (
    "A controller without a package index deploys from prebuilt wheels: on a machine with an index run\n"
    "    python -m ober_deploy.wheels DIR\n"
    "copy DIR to this controller and set ober_wheels_dir to it (inventory or group_data/all.py)."
)

Log = Callable[[str], None]


class WheelError(RuntimeError):
    """The wheel set cannot be built or read; the message says what to do."""


@dataclass(frozen=True)
class WheelSet:
    """A directory of wheels the deploy uploads and a node's pip installs, without an index."""

    directory: Path
    names: tuple[str, ...]  # the .whl files, sorted
    digest: str  # hash of the wheels' bytes: the node's venv is named after it, so new content = new venv
    version: str  # ober_health's version in the set (`0.1.0+<source key>` when built here)

    @classmethod
    def read(cls, directory: Path) -> WheelSet:
        names = tuple(sorted(p.name for p in directory.glob("*.whl")))
        ours = [name for name in names if name.startswith(f"{DISTRIBUTION}-")]
        if len(ours) != 1:
            raise WheelError(f"{directory}: expected one {DISTRIBUTION} wheel among {list(names) or 'no wheels'}")
        digest = hashlib.sha256()
        for name in names:
            digest.update(name.encode() + b"\0" + hashlib.sha256((directory / name).read_bytes()).digest())
        return cls(directory, names, digest.hexdigest()[:16], ours[0].split("-")[1])

    def requirements(self, prefix: str = "") -> str:
        """A pip requirements file naming every wheel of the set, as `prefix/name` (`prefix` = where it lies)."""
        return "".join(f"{prefix}{name}\n" for name in self.names)


def _project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _source_files() -> list[Path]:
    """What goes into the ober_health wheel: pyproject.toml and the package (what `_build` copies)."""
    package = [p for p in (REPO / DISTRIBUTION).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return sorted([REPO / "pyproject.toml", *package])


def source_key() -> str:
    """Hash of everything the wheel set is made from (code, metadata, the dependency pins)."""
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_version() -> str:
    """ober_health's version as built from this checkout: pyproject's, plus the source key as local label."""
    project = _project()["project"]
    assert isinstance(project, dict)
    return f"{project['version']}+{source_key()}"


def dependencies() -> list[str]:
    """What a node's venv needs besides ober_health (pyproject's runtime dependencies)."""
    project = _project()["project"]
    assert isinstance(project, dict)
    return list(project["dependencies"])


def build_requirements() -> list[str]:
    """What building the ober_health wheel needs from an index (pyproject's [build-system] requires)."""
    system = _project()["build-system"]
    assert isinstance(system, dict)
    return list(system["requires"])


# pure-Python wheels only: they install on any node's Python >= 3.11 without a compiler
DOWNLOAD_FLAGS = (
    "--only-binary=:all:",
    "--platform=any",
    "--implementation=py",
    "--abi=none",
    "--python-version=3.11",
)


def _stderr(message: str) -> None:
    print(f"[wheels] {message}", file=sys.stderr, flush=True)


def ensure_wheels(log: Log = _stderr) -> Path:
    """The cached wheel set for this checkout, built if missing; returns its directory.

    Safe with other processes (a file lock) and with pyinfra's greenlets (the lock's wait yields). A
    build that fails or is interrupted leaves no `build-*` directory: each build starts by removing
    what an earlier, killed one left, and removes its own on any error.
    """
    target = CACHE / source_key()
    if (target / REQUIREMENTS_NAME).exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with locked(CACHE / ".lock", waiting=lambda: log(f"waiting for another run building the wheels in {CACHE}")):
        if (target / REQUIREMENTS_NAME).exists():
            return target
        for stale in CACHE.glob(f"{BUILD_PREFIX}*"):  # we hold the lock: nobody is building there
            shutil.rmtree(stale, ignore_errors=True)
        log(
            f"building the wheels the nodes install (once per change of {DISTRIBUTION}): {DISTRIBUTION} "
            f"{build_version()} from {REPO}, {', '.join(dependencies())} from the package index"
        )
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=CACHE))
        try:
            _build(work)
            (work / REQUIREMENTS_NAME).write_text(WheelSet.read(work).requirements())
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"wheels built in {time.monotonic() - started:.1f}s: {target}")
    return target


def _build(out: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    with tempfile.TemporaryDirectory() as build:
        # build from a copy: setuptools leaves build/ and *.egg-info behind in the source tree; the copy's
        # version carries the source key, so the installed distribution says which code it is
        source = Path(build) / "src"
        shutil.copytree(REPO / DISTRIBUTION, source / DISTRIBUTION, ignore=shutil.ignore_patterns("__pycache__"))
        # the long description is not the repository's README: editing it must not make a new node version
        (source / "README.md").write_text(f"{DISTRIBUTION}: the node side of ober (see the repository's README)\n")
        pyproject = (REPO / "pyproject.toml").read_text()
        versioned, count = re.subn(r'(?m)^version = "[^"]+"$', f'version = "{build_version()}"', pyproject, count=1)
        if count != 1:
            raise WheelError('pyproject.toml: no `version = "..."` line in [project] to stamp the source key on')
        (source / "pyproject.toml").write_text(versioned)
        _pip(
            ["wheel", "--no-deps", "-w", str(out), str(source)],
            env,
            f"build the {DISTRIBUTION} wheel (needs {', '.join(build_requirements())} from an index)",
        )
    _pip(
        ["download", *DOWNLOAD_FLAGS, "-d", str(out), *dependencies()],
        env,
        f"download {', '.join(dependencies())} (and what they need) from an index",
    )


def _pip(args: list[str], env: dict[str, str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise WheelError(
            f"cannot {what}: `pip {args[0]}` did not finish within {PIP_TIMEOUT:g}s\n{OFFLINE_HINT}"
        ) from None
    if result.returncode != 0:
        reason = "\n".join(f"    {line}" for line in _pip_reason(result.stderr + result.stdout))
        raise WheelError(f"cannot {what}: `pip {args[0]}` failed:\n{reason}\n{OFFLINE_HINT}")


def _pip_reason(output: str) -> list[str]:
    """The lines of pip's output that say why: its ERROR lines and the last connection failure."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = [line for line in lines if line.startswith("ERROR:")]
    refused = [m[1] for line in lines if (m := re.search(r"Failed to establish a new connection: ([^')]+)", line))]
    if refused:
        reason.insert(0, f"the index did not answer: {refused[-1]}")
    return reason or lines[-6:]


def main() -> None:
    """`python -m ober_deploy.wheels [DIR]`: build the set (and copy it to DIR for an offline controller)."""
    try:
        wheels = ensure_wheels()
    except WheelError as error:
        sys.exit(f"ober_deploy.wheels: {error}")
    if len(sys.argv) > 1:
        dest = Path(sys.argv[1])
        dest.mkdir(parents=True, exist_ok=True)
        for path in wheels.iterdir():
            shutil.copy(path, dest / path.name)
        wheels = dest
    print(wheels)


if __name__ == "__main__":
    main()
