"""The package index of the lab's controller: a local wheelhouse holding what an operator's index serves.

The controller namespace has no route out, like the controller of an air-gapped site that has its own
index (a mirror, a devpi) and nothing else. The deploy must still do there everything an operator's
deploy does, building ober's own wheel from the checkout included, so the lab does not build anything for
it: it gives pip a wheelhouse with exactly what such an index would serve - ober's dependencies and its
build requirements (setuptools, wheel), never ober itself - through pip's own environment variables
(`PIP_NO_INDEX`, `PIP_FIND_LINKS`; the machine's pip configuration is ignored).

    wheelhouse = ensure_wheelhouse()              # once, in the host namespace (PyPI reachable), cached
    env = index_env(wheelhouse, os.environ)       # for `pyinfra ... deploy.py` in the controller namespace

Cached next to the node image (`/var/tmp/ober-lab` or `$OBER_LAB_CACHE`), keyed by the requirement lists
and the controller's Python, under the same kind of file lock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from lab.rootfs import cache_dir_default
from ober_deploy.locking import locked
from ober_deploy.wheels import DOWNLOAD_FLAGS, build_requirements, dependencies

RECIPE_VERSION = "1"  # bump when what goes into the wheelhouse changes in a way the key does not see


def cache_key() -> str:
    material = "\n".join(
        [RECIPE_VERSION, f"{sys.version_info[0]}.{sys.version_info[1]}", *dependencies(), "--", *build_requirements()]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def ensure_wheelhouse(cache_dir: Path | None = None) -> Path:
    """The cached wheelhouse for this checkout's requirements, downloaded first if missing."""
    cache = cache_dir or cache_dir_default()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"wheelhouse-{cache_key()}"
    if target.is_dir():
        return target
    with locked(cache / ".wheelhouse.lock"):
        if target.is_dir():
            return target
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="wheelhouse-build-", dir=cache))
        try:
            # the runtime dependencies exactly as the deploy asks for them (pure-Python, any platform) ...
            _pip("download", "-d", str(work), *DOWNLOAD_FLAGS, *dependencies())
            # ... and what pip's isolated build of the ober_health wheel installs on the controller
            _pip("download", "-d", str(work), "--only-binary=:all:", *build_requirements())
            work.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"[wheelhouse] {target} in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return target


def index_env(wheelhouse: Path, base: Mapping[str, str]) -> dict[str, str]:
    """`base` with pip pointed at `wheelhouse` as its only index (and none of the machine's pip settings)."""
    env = {key: value for key, value in base.items() if not key.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheelhouse),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def _pip(*args: str) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[3:])} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
