"""The Debian root filesystem the lab's systemd nodes boot: built once, cached as a tarball, copied per node.

Lab nodes have no route to a package archive (as in an air-gapped site), so every OS package the deploy
installs (HAProxy, python3-venv, ...) must already be in the image: the deploy's `apt.packages` then finds
them installed and changes nothing, exactly as on a production node where they are installed already.

    from lab.rootfs import ensure_rootfs, copy_rootfs
    tarball = ensure_rootfs()            # ~1-2 min the first time, then instant (cached)
    root = copy_rootfs(Path("/var/tmp/n1"))  # a private, writable copy for one node

The cache (default `/var/tmp/ober-lab`, or `$OBER_LAB_CACHE`) is keyed by a hash of everything that shapes
the image (suite, mirror, package list, build recipe version), so changing the package list rebuilds it.
A file lock makes concurrent callers (two test sessions, the deploy's chroot tests) wait for one build
instead of running two.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ober_deploy.locking import locked

SUITE = "bookworm"

# What the deploy needs on a node, plus what a booted, SSH-reachable systemd node needs.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-venv",
    "iproute2",
    "procps",
    "haproxy",
    "curl",
    "socat",
    "ca-certificates",
    "kmod",
    "iputils-ping",
    "frr",  # node-side bfdd for the BFD variant of the lab
)

# Bump when the build steps below change in a way that changes the image.
RECIPE_VERSION = "3"

DEFAULT_CACHE = Path("/var/tmp/ober-lab")
SOURCES_FILE = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
FALLBACK_SECURITY = "http://deb.debian.org/debian-security"

# Timers that would reach for the network (there is none) and only add noise to a node's journal.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service")
# Installed because the deploy may use them, but not running until the deploy says so.
DISABLED_UNITS = ("frr.service",)


def cache_dir_default() -> Path:
    return Path(os.environ.get("OBER_LAB_CACHE", str(DEFAULT_CACHE)))


def mirrors(sources: Path = SOURCES_FILE) -> tuple[str, str]:
    """The machine's own Debian mirror and security mirror (the only archives this machine may reach)."""
    uris = []
    if sources.exists():
        uris = [line.split()[1] for line in sources.read_text().splitlines() if line.startswith("URIs:")]
    main = next((u for u in uris if "security" not in u), FALLBACK_MIRROR)
    security = next((u for u in uris if "security" in u), FALLBACK_SECURITY)
    return main, security


def cache_key() -> str:
    main, security = mirrors()
    material = "\n".join([RECIPE_VERSION, SUITE, main, security, *sorted(PACKAGES)])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def tarball_path(cache_dir: Path | None = None) -> Path:
    return (cache_dir or cache_dir_default()) / f"rootfs-{SUITE}-{cache_key()}.tar.zst"


def ensure_rootfs(cache_dir: Path | None = None) -> Path:
    """Return the cached rootfs tarball, building it first if this package list was never built here.

    Needs root, debootstrap and zstd. Safe to call from several processes at once: one builds, the
    others wait on the lock and then reuse its result.
    """
    cache = cache_dir or cache_dir_default()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = tarball_path(cache)
    if tarball.exists():
        return tarball
    with locked(cache / ".build.lock"):
        if tarball.exists():  # someone else built it while we waited
            return tarball
        started = time.monotonic()
        _log(f"building node root filesystem {tarball.name} (once per package list)")
        _build(cache, tarball)
        _log(f"root filesystem built in {time.monotonic() - started:.1f}s: {tarball}")
    return tarball


def copy_rootfs(dest: Path, cache_dir: Path | None = None) -> Path:
    """Unpack a private copy of the cached rootfs into `dest` (created; must be empty) and return it.

    Each node gets its own copy so nodes never share /etc; the caller removes it with `remove_rootfs`.
    """
    tarball = ensure_rootfs(cache_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: refusing to unpack a root filesystem over it")
    _run("tar", "--numeric-owner", "-xpf", str(tarball), "-I", "zstd", "-C", str(dest))
    return dest


def remove_rootfs(root: Path) -> None:
    """Delete a node's copy. Refuses paths that do not look like an unpacked rootfs (a wrong path costs a lot)."""
    if not (root / "etc" / "debian_version").exists() or root.resolve() == Path("/"):
        raise ValueError(f"{root} does not look like a lab root filesystem; not deleting it")
    shutil.rmtree(root)


def _build(cache: Path, tarball: Path) -> None:
    for tool in ("debootstrap", "zstd", "chroot"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"building the lab root filesystem needs `{tool}` (apt-get install debootstrap zstd)")
    main, security = mirrors()
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    root = work / "root"
    try:
        # debootstrap puts its own policy-rc.d (exit 101) and a fake start-stop-daemon in place while it
        # configures the included packages, so no postinst starts a daemon in the host's namespaces.
        _run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            main,
            timeout=1200,
        )
        _finish(root, main, security)
        partial = tarball.with_suffix(".partial")
        _run("tar", "--numeric-owner", "-cpf", str(partial), "-I", "zstd -T0 -3", "-C", str(root), ".", timeout=600)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _finish(root: Path, main: str, security: str) -> None:
    """Bring the image to the point releases production runs, and make it bootable as a lab node."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# lab image build: no daemon starts\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/apt/sources.list").write_text("")
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {main}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    _chroot(root, env, "apt-get", "update", "-q")
    _chroot(root, env, "apt-get", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", "upgrade", timeout=900)
    # keep the package lists (a deploy's package check reads them); drop the downloaded .debs
    _chroot(root, env, "apt-get", "clean")
    for unit in MASKED_UNITS:
        _chroot(root, env, "systemctl", "mask", unit)
    for unit in DISABLED_UNITS:
        _chroot(root, env, "systemctl", "disable", unit)
    # per-node identity is written by the node's boot code: no shared machine-id or SSH host keys
    (root / "etc/machine-id").write_text("")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    resolv.write_text("")  # nodes resolve nothing: there is no DNS in the lab
    policy.unlink()


def _chroot(root: Path, env: dict[str, str], *argv: str, timeout: float = 300) -> None:
    # a private mount namespace with its own /proc, gone when the command ends: nothing leaks to the host
    script = 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"'
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(root), *argv],
        env=env,
        check=True,
        timeout=timeout,
        stdout=sys.stderr,
    )


def _run(*argv: str, timeout: float = 120) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}): {tail}")


def _log(message: str) -> None:
    print(f"[rootfs] {message}", file=sys.stderr, flush=True)


def main() -> None:
    """`python -m lab.rootfs`: build (or find) the cached image and print its path."""
    print(ensure_rootfs())


if __name__ == "__main__":
    main()
