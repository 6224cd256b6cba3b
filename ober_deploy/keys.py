"""The inventory's keys: one table of name, default and one line of help.

It gives the known-keys list (a key not in it is reported as a typo), every controller default
(`ober_deploy/settings.py` reads them with `value`), and the README's key table (`python -m
ober_deploy.keys` prints it; tests/deploy/test_settings.py checks the README has exactly that). What the
node defaults itself (hold time, health timers) is the node model's (ober_health/config.py), read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ober_health.config import DEFAULT_HOLD_TIME, HEALTH_RANGES_TEXT, HealthConfig


class _Required:
    def __repr__(self) -> str:
        return "(required)"


REQUIRED: Any = _Required()  # no default: the inventory must say it
METRICS_ALLOW_DEFAULT = ("127.0.0.0/8", "::1/128")  # loopback only, as HAProxy's stats frontend


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    help: str

    @property
    def default_text(self) -> str:
        if self.default is REQUIRED:
            return "required"
        if self.default is None:
            return "none"
        return f"`{self.default!r}`"


_TIMERS = HealthConfig()
KEYS: tuple[Key, ...] = (
    Key("ober_local_asn", REQUIRED, "the nodes' ASN, 1..4294967295"),
    Key("ober_router_id", None, "BGP router id, IPv4 (none: the host's address)"),
    Key("ober_local_ipv4", None, "the node's IPv4 session address (none: the router id)"),
    Key("ober_local_ipv6", None, "the node's IPv6 session address (IPv6 VIPs ride an IPv6 session)"),
    Key(
        "ober_peers",
        REQUIRED,
        "`[{address, asn, bfd}]`: the routers; `bfd: true` runs FRR's bfdd on the node (~150 ms failure detection)",
    ),
    Key("ober_hold_time", DEFAULT_HOLD_TIME, "BGP hold time, 3..65535 s"),
    Key(
        "ober_vips",
        REQUIRED,
        "prefixes (one address: /32 or /128), or `{prefix, backend, backends, min_up, med, communities}`;"
        " `backends` (a hostlist) gives the VIP an RGW pool of its own, an HAProxy backend named `backend`"
        " (default `be_vip<index>`); the others use `ober_backends`; `min_up` servers of the VIP's backend"
        " must be UP for it to be announced",
    ),
    Key("ober_backends", REQUIRED, 'RGW daemons as a Slurm hostlist: `"rgw[01-08].internal:7480"` (backend `be_rgw`)'),
    Key("ober_backend_check_path", "/", "HAProxy's RGW health check: `HEAD` this path, expect 200"),
    Key(
        "ober_tls_certificates",
        [],
        "PEM bundles (cert + chain + key) on the controller; checked: key matches, not expired, each chain"
        " certificate issued the one before",
    ),
    # Off by default: browsers enforce it for max-age on the S3 name and it cannot be taken back sooner; S3 SDKs
    # ignore it. 63072000 (2 years) is Mozilla's value for a site that serves its S3 name over HTTPS only.
    Key(
        "ober_hsts_max_age",
        0,
        "`Strict-Transport-Security: max-age=N` on TLS responses, in seconds (0: none; see Hardening)",
    ),
    # Off by default: stapling needs the node to reach the certificate's OCSP responder (AIA URL), which sites
    # behind firewalls or with a private CA without one cannot; off, nothing is lost (clients ask the responder
    # themselves, or do not check). On: ober-ocsp.timer on each node fetches the responses, HAProxy staples them.
    Key(
        "ober_ocsp_stapling",
        False,
        "staple each bundle's OCSP response (fetched on the node from the responder the certificate names, hourly"
        " when due, pushed to HAProxy without a reload); needs the issuer in the bundle (see Hardening)",
    ),
    Key("ober_http", False, "also serve plain HTTP on port 80"),
    # the three whitelists: addresses, prefixes and Slurm hostlists of names (`weka[001-100]`), names resolved
    # on the controller; `pyinfra INVENTORY tasks/whitelists.py` syncs them alone (the seed's `ober sync`)
    Key(
        "ober_whitelist_frontend",
        [],
        "clients allowed on the VIPs (prefixes, addresses, hostlists like `weka[001-100]` resolved on the"
        " controller): enforced by HAProxy on every node, every connection (ACL file; a change is one seamless"
        " reload, no route moves); empty: everyone",
    ),
    Key(
        "ober_whitelist_routers",
        [],
        "every BGP peer must be inside (same forms): enforced on the controller, before any node is touched;"
        " empty: no check",
    ),
    Key(
        "ober_whitelist_backend",
        [],
        "every RGW address the backends resolve to must be inside (same forms): enforced on the controller,"
        " before any node is touched; empty: no check",
    ),
    Key(
        "ober_health",
        {
            "interval": _TIMERS.interval,
            "timeout": _TIMERS.timeout,
            "rise": _TIMERS.rise,
            "fall": _TIMERS.fall,
            "watch_haproxy": _TIMERS.watch_haproxy,
        },
        f"`{{interval, timeout, rise, fall, watch_haproxy}}` of ober-health ({HEALTH_RANGES_TEXT}; watch_haproxy:"
        " a dead HAProxy withdraws at once)",
    ),
    Key(
        "ober_hardware_watchdog",
        True,
        "the node must have a hardware watchdog used by systemd: `ober doctor` fails without one (false: a"
        " warning, for VMs and containers that have none)",
    ),
    Key("ober_kernel_tuning", True, "sysctl.d tuning (keys a container cannot write are skipped with a notice)"),
    Key("ober_haproxy_repository", None, "an apt source line / dnf baseurl for a newer HAProxy"),
    Key("ober_wheels_dir", None, "a directory of prebuilt wheels, for a controller without a package index"),
    Key("ober_check_dns", True, "resolve backend names on the controller before deploying"),
    Key("ober_maxconn", 100000, "HAProxy's global connection limit (lowered to the node's descriptor limit)"),
    Key(
        "ober_metrics_bind",
        None,
        "`address:port` (IPv6 `[address]:port`) where a site's Prometheus scrapes HAProxy's `/metrics` and"
        " ober-health's `/metrics/health` (none: on loopback only; see Metrics)",
    ),
    Key("ober_metrics_allow", list(METRICS_ALLOW_DEFAULT), "source prefixes answered there; others get 403"),
)
BY_NAME = {key.name: key for key in KEYS}
KNOWN_KEYS = frozenset(BY_NAME)


def value(data: Mapping[str, Any], name: str) -> Any:
    """The inventory's value of `name`, or its default (None when required and missing)."""
    default = BY_NAME[name].default
    return data.get(name, None if default is REQUIRED else default)


def markdown_table() -> str:
    """The README's key table."""
    lines = ["| key | default | what |", "| --- | --- | --- |"]
    lines += [f"| `{key.name}` | {key.default_text} | {key.help} |" for key in KEYS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
