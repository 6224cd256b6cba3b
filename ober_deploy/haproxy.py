"""Which HAProxy the node runs, and so which of its keywords the config may use.

Debian 12 ships HAProxy 2.6, Debian 13 ships 3.0, and `ober_haproxy_repository` can bring newer ones. A
keyword the node's HAProxy does not know makes `haproxy -c` fail, so the template only uses what the
version the node reports supports, and falls back to what 2.6 offers otherwise.

The version is read on the node (`haproxy -v`); a node where HAProxy is not installed yet reports the
version its package manager would install (apt's candidate). When neither is known the config is the one
every supported version accepts.

    features = haproxy_features("HAProxy version 3.0.11-1+deb13u4 2025/10/15 - https://haproxy.org/")
    features.handshake_timeout   # True: `timeout client-hs` exists
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ober_health.paths import NodePaths

# What the deploy asks the node (pyinfra's Command fact): the running binary's version, else apt's candidate.
VERSION_COMMAND = (
    "haproxy -v 2>/dev/null | head -n 1; apt-cache policy haproxy 2>/dev/null | sed -n 's/^ *Candidate: *//p'"
)

_BINARY = re.compile(r"HA-?Proxy version (\d+)\.(\d+)")
_PACKAGE = re.compile(r"^(?:\d+:)?(\d+)\.(\d+)[.~+-]")  # Debian/RPM version, with an optional epoch


@dataclass(frozen=True)
class HaproxyFeatures:
    """The config keywords ober uses that not every supported HAProxy has."""

    version: tuple[int, int] | None  # (major, minor); None: unknown, so only what every version accepts

    @property
    def handshake_timeout(self) -> bool:
        """`timeout client-hs` (3.0; 2.6 rejects it): a client that stalls in the TLS handshake is cut after
        this instead of after `timeout client`, which ober keeps at minutes for long uploads."""
        return self.version is not None and self.version >= (3, 0)

    def describe(self) -> str:
        return "unknown" if self.version is None else f"{self.version[0]}.{self.version[1]}"


# Query parameters of presigned URLs that are credentials (SigV4: signature, credential scope with the access
# key id, STS session token; SigV2: access key id and signature). HAProxy's access log shows their values
# masked; the path, the other parameters, status, bytes and timings stay.
SECRET_QUERY_PARAMETERS = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "AWSAccessKeyId", "Signature")
MASK = "***"


@dataclass(frozen=True)
class StatsSocket:
    """One of HAProxy's stats sockets as haproxy.cfg declares it: what the deploy also checks on the node.

    HAProxy sets mode and owner only when it creates the socket; a reload inherits the old socket, so a
    node whose first HAProxy ran the distribution's config keeps that config's mode until something looks.
    """

    path: str
    mode: str  # octal, as haproxy.cfg and chmod write it
    user: str
    group: str
    level: str  # admin: full control; user: read-only statistics


def stats_sockets(paths: NodePaths) -> tuple[StatsSocket, ...]:
    """Operators (root) get the admin socket; ober-health and `ober` (group `paths.user`) the read-only one."""
    return (
        StatsSocket(paths.admin_socket, "600", "root", "root", "admin"),
        StatsSocket(paths.ober_socket, "660", "root", paths.user, "user"),
    )


def uri_mask() -> str:
    """HAProxy converters that mask the value of each secret query parameter (any case) in a path + query.

    One `regsub` per name: an alternation would need parentheses, which HAProxy's argument parser of 2.6
    does not take unescaped. A name that ends another one (`Signature` in `X-Amz-Signature`) masks the same
    value again, harmlessly."""
    return ",".join(f"regsub({name}=[^&]*,{name}={MASK},ig)" for name in SECRET_QUERY_PARAMETERS)


def parse_version(text: str | None) -> tuple[int, int] | None:
    """(major, minor) from `haproxy -v` output, or else from a package version line (`3.0.11-1+deb13u4`)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        match = _BINARY.search(line)
        if match:
            return int(match[1]), int(match[2])
    for line in lines:
        match = _PACKAGE.match(line)
        if match:
            return int(match[1]), int(match[2])
    return None


def haproxy_features(text: str | None) -> HaproxyFeatures:
    """Features from the output of VERSION_COMMAND on the node."""
    return HaproxyFeatures(parse_version(text))


__all__ = [
    "MASK",
    "SECRET_QUERY_PARAMETERS",
    "VERSION_COMMAND",
    "HaproxyFeatures",
    "StatsSocket",
    "haproxy_features",
    "parse_version",
    "stats_sockets",
    "uri_mask",
]
