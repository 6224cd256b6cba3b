"""What differs between the distributions ober deploys to: package manager, package names, the venv Python.

Decided from pyinfra's `LinuxDistribution` fact, so `--dry` against a RHEL host plans dnf and RHEL's
names without the operator saying anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnsupportedPlatform(RuntimeError):
    """The node runs a distribution ober has no package recipe for."""


@dataclass(frozen=True)
class Platform:
    family: str  # "debian" or "rhel"
    name: str
    major: int | None
    package_manager: str  # "apt" or "dnf"
    packages: tuple[str, ...]
    python: str  # the interpreter the venv is made from
    # Debian ships /run/haproxy via tmpfiles.d; RHEL's package keeps its socket elsewhere
    needs_haproxy_tmpfiles: bool
    bfd_daemon: str  # FRR's bfdd, for nodes with BFD peers


DEBIAN_PACKAGES = ("haproxy", "python3", "python3-venv", "iproute2", "ca-certificates", "socat")
RHEL_PACKAGES = ("haproxy", "python3", "python3-pip", "iproute", "ca-certificates", "socat")


def platform_from_facts(distribution: Mapping[str, Any] | None) -> Platform:
    """Map the `LinuxDistribution` fact to a `Platform`; unknown distributions are refused by name."""
    distribution = distribution or {}
    meta = distribution.get("release_meta") or {}
    ident = str(meta.get("ID", "")).lower()
    like = str(meta.get("ID_LIKE", "")).lower().split()
    name = str(distribution.get("name") or ident or "unknown")
    major = distribution.get("major")
    if ident in ("debian", "ubuntu") or "debian" in like:
        return Platform("debian", name, major, "apt", DEBIAN_PACKAGES, "python3", False, "/usr/lib/frr/bfdd")
    if ident in ("rhel", "rocky", "almalinux", "centos", "fedora") or "rhel" in like or "fedora" in like:
        return Platform("rhel", name, major, "dnf", RHEL_PACKAGES, "python3", True, "/usr/libexec/frr/bfdd")
    raise UnsupportedPlatform(f"{name} ({ident or 'no ID in /etc/os-release'}) is not Debian/Ubuntu or RHEL-like")
