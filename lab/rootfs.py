"""Debian root filesystems the lab builds once, caches as tarballs and unpacks per user.

Two kinds share one cache mechanism (an `Image`: suite + package list + whether it boots):
- the lab's systemd nodes (`node_image(suite)`, Debian 12 or 13): lab nodes have no route to a package
  archive (as in an air-gapped site), so every OS package the deploy installs (HAProxy, python3-venv, ...)
  must already be in the image: the deploy's `apt.packages` then finds them installed and changes nothing,
  exactly as on a production node where they are installed already;
- chroots for one daemon the lab runs as a site would, e.g. Ceph's `radosgw` (see lab/rgw.py).

    from lab.rootfs import ensure_rootfs, copy_rootfs, ensure_image, unpack_image
    tarball = ensure_rootfs()                # the Debian 12 node image: ~1-2 min the first time, then cached
    root = copy_rootfs(Path("/var/tmp/n1"), suite="trixie")   # a private, writable Debian 13 node copy

The cache (default `/var/tmp/ober-lab`, or `$OBER_LAB_CACHE`) is keyed by a hash of everything that shapes
an image (suite, mirror, package list, build recipe version), so changing a package list rebuilds it.
A file lock per image makes concurrent callers (two test sessions, the demo) wait for one build instead of
running two, while different images build side by side.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ober_deploy.locking import locked

DEFAULT_SUITE = "bookworm"  # Debian 12: what the fleet boots unless told otherwise
NODE_SUITES = ("bookworm", "trixie")  # Debian 12 (HAProxy 2.6) and Debian 13 (HAProxy 3.0)
SUITE = DEFAULT_SUITE  # kept for callers of the single-suite era

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
# Suites without -updates/-security that are published with a short Valid-Until: a mirror frozen a few
# weeks ago (as this kind of machine has) serves a Release file apt calls expired, so apt is told not to
# check that date for them. Stable suites keep the check.
ROLLING_SUITES = ("sid", "unstable")

# Timers that would reach for the network (there is none) and only add noise to a node's journal.
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service")
# Installed because the deploy may use them, but not running until the deploy says so.
DISABLED_UNITS = ("frr.service",)


@dataclass(frozen=True)
class Image:
    """One cached root filesystem: a Debian suite with `packages`, a bootable lab node or a plain chroot."""

    kind: str  # the tarball's name prefix: "rootfs" for nodes, the daemon's name for a chroot ("rgw")
    suite: str
    packages: tuple[str, ...]
    bootable: bool = True  # a systemd node: network timers masked, no machine-id or SSH host keys baked in

    @property
    def rolling(self) -> bool:
        return self.suite in ROLLING_SUITES

    def cache_key(self) -> str:
        main, security = mirrors()
        material = [RECIPE_VERSION, self.suite, main, security, *sorted(self.packages)]
        if not self.bootable:
            material.append("chroot")
        return hashlib.sha256("\n".join(material).encode()).hexdigest()[:16]

    def tarball(self, cache_dir: Path | None = None) -> Path:
        return (cache_dir or cache_dir_default()) / f"{self.kind}-{self.suite}-{self.cache_key()}.tar.zst"


def node_image(suite: str = DEFAULT_SUITE) -> Image:
    """The image lab nodes boot: Debian `suite` with what the deploy and a systemd node need."""
    if suite not in NODE_SUITES:
        raise ValueError(f"suite: {suite!r} is not one of {', '.join(NODE_SUITES)}")
    return Image("rootfs", suite, PACKAGES)


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


def cache_key(suite: str = DEFAULT_SUITE) -> str:
    return node_image(suite).cache_key()


def tarball_path(cache_dir: Path | None = None, suite: str = DEFAULT_SUITE) -> Path:
    return node_image(suite).tarball(cache_dir)


def ensure_image(image: Image, cache_dir: Path | None = None) -> Path:
    """Return the cached tarball of `image`, building it first if it was never built here.

    Needs root, debootstrap and zstd. Safe to call from several processes at once: one builds, the
    others wait on the lock and then reuse its result.
    """
    cache = cache_dir or cache_dir_default()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = image.tarball(cache)
    if tarball.exists():
        return tarball
    with locked(cache / f".build-{image.kind}-{image.suite}.lock"):  # other images build meanwhile
        if tarball.exists():  # someone else built it while we waited
            return tarball
        started = time.monotonic()
        _log(f"building {tarball.name}: Debian {image.suite} with {len(image.packages)} packages (once per list)")
        _build(image, cache, tarball)
        _log(f"root filesystem built in {time.monotonic() - started:.1f}s: {tarball}")
    return tarball


def unpack_image(image: Image, dest: Path, cache_dir: Path | None = None) -> Path:
    """Unpack a private copy of `image` into `dest` (created; must be empty) and return it.

    Each user gets its own copy (nodes never share /etc); the caller removes it with `remove_rootfs`.
    """
    tarball = ensure_image(image, cache_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: refusing to unpack a root filesystem over it")
    _run("tar", "--numeric-owner", "-xpf", str(tarball), "-I", "zstd", "-C", str(dest), timeout=300)
    return dest


def ensure_unpacked(image: Image, cache_dir: Path | None = None) -> Path:
    """`image` unpacked once in the cache, for users that only read it (a chroot whose writes all go to
    directories mounted over it). Unpacked next to the tarball under the build lock, then renamed into
    place, so a reader never sees half a tree. Callers must not write to it."""
    tarball = ensure_image(image, cache_dir)
    tree = tarball.with_name(tarball.name.removesuffix(".tar.zst"))
    if tree.is_dir():
        return tree
    with locked(tarball.parent / f".build-{image.kind}-{image.suite}.lock"):
        if tree.is_dir():
            return tree
        partial = tree.with_name(tree.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        unpack_image(image, partial, cache_dir)
        partial.rename(tree)
    return tree


def ensure_rootfs(cache_dir: Path | None = None, suite: str = DEFAULT_SUITE) -> Path:
    """The cached node image of `suite` (built first if needed)."""
    return ensure_image(node_image(suite), cache_dir)


def copy_rootfs(dest: Path, cache_dir: Path | None = None, suite: str = DEFAULT_SUITE) -> Path:
    """A private, writable copy of the node image of `suite` in `dest`."""
    return unpack_image(node_image(suite), dest, cache_dir)


def remove_rootfs(root: Path) -> None:
    """Delete a copy. Refuses paths that do not look like an unpacked rootfs (a wrong path costs a lot),
    and a copy with something mounted inside it (deleting through a bind mount of /dev would be worse)."""
    if not (root / "etc" / "debian_version").exists() or root.resolve() == Path("/"):
        raise ValueError(f"{root} does not look like a lab root filesystem; not deleting it")
    inside = [m for m in _mount_points() if m == root.resolve() or root.resolve() in m.parents]
    if inside:
        raise RuntimeError(f"{root}: still mounted inside it: {', '.join(map(str, inside))}; not deleting it")
    shutil.rmtree(root)


def _mount_points() -> list[Path]:
    """Mount points of this process's mount namespace (/proc/self/mountinfo, octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        field = line.split()[4]
        points.append(Path(field.encode().decode("unicode_escape")))
    return points


def _build(image: Image, cache: Path, tarball: Path) -> None:
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
            f"--include={','.join(image.packages)}",
            image.suite,
            str(root),
            main,
            timeout=1200,
        )
        _finish(image, root, main, security)
        partial = tarball.with_suffix(".partial")
        _run("tar", "--numeric-owner", "-cpf", str(partial), "-I", "zstd -T0 -3", "-C", str(root), ".", timeout=600)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sources(image: Image, main: str, security: str) -> str:
    """deb822 sources of the image: the suite, its updates and its security archive (rolling: the suite)."""
    keyring = "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    if image.rolling:
        return f"Types: deb\nURIs: {main}\nSuites: {image.suite}\nComponents: main\n{keyring}"
    return (
        f"Types: deb\nURIs: {main}\nSuites: {image.suite} {image.suite}-updates\nComponents: main\n{keyring}\n"
        f"Types: deb\nURIs: {security}\nSuites: {image.suite}-security\nComponents: main\n{keyring}"
    )


def _finish(image: Image, root: Path, main: str, security: str) -> None:
    """Bring the image to the point releases production runs; make a node image bootable as a lab node."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# lab image build: no daemon starts\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/apt/sources.list").write_text("")
    (root / "etc/apt/sources.list.d/debian.sources").write_text(_sources(image, main, security))
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    apt = ["-o", "Acquire::Check-Valid-Until=false"] if image.rolling else []
    _chroot(root, env, "apt-get", *apt, "update", "-q")
    _chroot(root, env, "apt-get", *apt, "-y", "-q", "-o", "Dpkg::Options::=--force-confold", "upgrade", timeout=900)
    # keep the package lists (a deploy's package check reads them); drop the downloaded .debs
    _chroot(root, env, "apt-get", "clean")
    if image.bootable:
        for unit in MASKED_UNITS:
            _chroot(root, env, "systemctl", "mask", unit)
        for unit in DISABLED_UNITS:
            _chroot(root, env, "systemctl", "disable", unit)
        # per-node identity is written by the node's boot code: no shared machine-id or SSH host keys
        (root / "etc/machine-id").write_text("")
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
    resolv.write_text("")  # nothing in the lab resolves through DNS: names come from /etc/hosts
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


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.rootfs [SUITE...]`: build (or find) the cached node images and print their paths."""
    for suite in (argv if argv is not None else sys.argv[1:]) or [DEFAULT_SUITE]:
        print(ensure_rootfs(suite=suite))


if __name__ == "__main__":
    main()
