"""Validate one host's `ober_*` inventory data into `NodeSettings`, the only thing templates and tasks read.

A typo in an inventory must never reach a node: a VIP of `203.0.113.300/32` or an ASN of 0 would at best
fail a reload, at worst announce the wrong prefix. So every key is checked on the controller, before any
operation is planned, and every problem is reported as one line naming the host, the key and the value:

    ober-n1: ober_vips[0].prefix = '203.0.113.300/32': not an IP prefix

Defaults live here (and in `group_data/all.py` for the operator to read), so an inventory only says what
is particular to a site.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostlist

from ober_deploy.tls import certificate_problem

KEY_PREFIX = "ober_"
DEFAULT_BACKEND = "be_rgw"
ASN_RANGE = (1, 4294967295)
HSTS_MAX_AGE_RANGE = (0, 63072000)  # off .. two years (Mozilla's recommended value)
HOLD_TIME_RANGE = (3, 65535)  # RFC 4271: 0 or at least 3; 0 (no keepalives) would hide a dead node forever
_COMMUNITY = re.compile(r"[0-9]{1,5}:[0-9]{1,5}")  # fullmatch: `$` would accept a trailing newline
_HOSTNAME = re.compile(  # fullmatch: `$` would accept a trailing newline
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HEALTH_KEYS: dict[str, tuple[type, float, float]] = {
    "interval": (float, 0.05, 10.0),
    "timeout": (float, 0.05, 10.0),
    "rise": (int, 1, 100),
    "fall": (int, 1, 100),
}
KNOWN_KEYS = frozenset(
    {
        "ober_local_asn",
        "ober_router_id",
        "ober_local_ipv4",
        "ober_local_ipv6",
        "ober_peers",
        "ober_hold_time",
        "ober_vips",
        "ober_backends",
        "ober_backend_check_path",
        "ober_tls_certificates",
        "ober_http",
        "ober_whitelist_routers",
        "ober_whitelist_frontend",
        "ober_whitelist_backend",
        "ober_health",
        "ober_kernel_tuning",
        "ober_haproxy_repository",
        "ober_wheels_dir",
        "ober_check_dns",
        "ober_maxconn",
        "ober_hsts_max_age",
    }
)


class InventoryError(ValueError):
    """The inventory cannot be deployed; `problems` holds one `host: key = value: why` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Peer:
    """A BGP router this node peers with."""

    address: str
    asn: int
    bfd: bool = False

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class Vip:
    """A service address: announced by the node while HAProxy and `min_up` servers of `backend` are healthy."""

    prefix: str
    backend: str = DEFAULT_BACKEND
    min_up: int = 1
    med: int | None = None
    communities: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return str(ipaddress.ip_network(self.prefix).network_address)

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version

    @property
    def bind_host(self) -> str:
        """The address as HAProxy's `bind` wants it (IPv6 in brackets)."""
        return f"[{self.address}]" if self.version == 6 else self.address


@dataclass(frozen=True)
class Backend:
    """One RGW daemon HAProxy balances over."""

    name: str
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        """`host:port` as HAProxy's `server` line wants it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class HealthTimers:
    interval: float = 0.2
    timeout: float = 0.5
    rise: int = 3
    fall: int = 2


@dataclass(frozen=True)
class NodeSettings:
    """Everything the templates and tasks need to know about one node, validated."""

    host: str
    local_asn: int
    router_id: str
    local_ipv4: str | None
    local_ipv6: str | None
    peers: tuple[Peer, ...]
    hold_time: int
    vips: tuple[Vip, ...]
    backends: tuple[Backend, ...]
    backend_check_path: str
    tls_certificates: tuple[Path, ...]
    http: bool
    whitelist_routers: tuple[str, ...]
    whitelist_frontend: tuple[str, ...]
    whitelist_backend: tuple[str, ...]
    health: HealthTimers
    kernel_tuning: bool
    haproxy_repository: str | None
    wheels_dir: Path | None
    maxconn: int
    backend_names: tuple[str, ...] = field(default=())
    hsts_max_age: int = 0  # Strict-Transport-Security on TLS responses; 0: no header

    @property
    def bfd(self) -> bool:
        return any(peer.bfd for peer in self.peers)

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(sorted({vip.version for vip in self.vips}))

    def local_address(self, version: int) -> str | None:
        return self.local_ipv4 if version == 4 else self.local_ipv6


class _Collector:
    """Collects problems of one host so the operator sees all of them in one run."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.problems: list[str] = []

    def add(self, key: str, value: Any, why: str) -> None:
        self.problems.append(f"{self.host}: {key} = {value!r}: {why}")


def _int(c: _Collector, key: str, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(key, value, "not an integer")
        return None
    if not low <= value <= high:
        c.add(key, value, f"out of range {low}..{high}")
        return None
    return value


def _bool(c: _Collector, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        c.add(key, value, "not true or false")
        return False
    return value


def _address(c: _Collector, key: str, value: Any, version: int | None = None) -> str | None:
    try:
        if not isinstance(value, str):  # ipaddress takes integers and bytes: 65001 would be 0.0.253.233
            raise ValueError(value)
        address = ipaddress.ip_address(value)
    except ValueError:
        c.add(key, value, "not an IP address" if version is None else f"not an IPv{version} address")
        return None
    if version is not None and address.version != version:
        c.add(key, value, f"not an IPv{version} address")
        return None
    return str(address)


def _prefix(c: _Collector, key: str, value: Any) -> str | None:
    if not isinstance(value, str) or "/" not in value:
        c.add(key, value, "not an IP prefix (address/length)")
        return None
    if "%" in value:
        c.add(key, value, "a scoped IPv6 address (%zone) is not a prefix that can be announced")
        return None
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        c.add(key, value, "not an IP prefix")
        return None
    c.add(key, value, f"host bits set (did you mean {network}?)")
    return None


def _networks(c: _Collector, key: str, value: Any) -> tuple[str, ...]:
    """A whitelist: addresses or prefixes, as a list or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        c.add(key, value, "not a list of addresses or prefixes")
        return ()
    out: list[str] = []
    for index, item in enumerate(items):
        text = item.strip() if isinstance(item, str) else item
        try:
            if not isinstance(text, str) or "%" in text:  # not integers (10 would be 0.0.0.10/32), no IPv6 zone
                raise ValueError(text)
            out.append(str(ipaddress.ip_network(text, strict=True)))
        except (ValueError, TypeError):
            c.add(f"{key}[{index}]", item, "not an IP address or prefix (without host bits)")
    return tuple(out)


def _peers(c: _Collector, value: Any) -> tuple[Peer, ...]:
    if not isinstance(value, list | tuple) or not value:
        c.add("ober_peers", value, "must be a non-empty list of {address, asn}")
        return ()
    peers: list[Peer] = []
    for index, item in enumerate(value):
        key = f"ober_peers[{index}]"
        if not isinstance(item, Mapping):
            c.add(key, item, "must be a mapping with address and asn")
            continue
        unknown = set(item) - {"address", "asn", "bfd"}
        for name in sorted(unknown, key=repr):  # keys may be of mixed types
            c.add(f"{key}.{name}", item[name], "unknown key (known: address, asn, bfd)")
        address = _address(c, f"{key}.address", item.get("address"))
        asn = _int(c, f"{key}.asn", item.get("asn"), *ASN_RANGE)
        bfd = _bool(c, f"{key}.bfd", item.get("bfd", False))
        if address and asn:
            peers.append(Peer(address, asn, bfd))
    seen: set[str] = set()
    for index, peer in enumerate(peers):
        if peer.address in seen:
            c.add(f"ober_peers[{index}].address", peer.address, "listed twice")
        seen.add(peer.address)
    return tuple(peers)


def _vips(c: _Collector, value: Any, backend_names: tuple[str, ...]) -> tuple[Vip, ...]:
    if not isinstance(value, list | tuple) or not value:
        c.add("ober_vips", value, "must be a non-empty list of prefixes or {prefix, backend, ...}")
        return ()
    vips: list[Vip] = []
    for index, item in enumerate(value):
        key = f"ober_vips[{index}]"
        entry: Mapping[str, Any] = {"prefix": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping):
            c.add(key, item, "must be a prefix or a mapping with prefix")
            continue
        for name in sorted(set(entry) - {"prefix", "backend", "min_up", "med", "communities"}, key=repr):
            c.add(f"{key}.{name}", entry[name], "unknown key (known: prefix, backend, min_up, med, communities)")
        prefix = _prefix(c, f"{key}.prefix", entry.get("prefix"))
        if prefix and ipaddress.ip_network(prefix).num_addresses != 1:
            c.add(f"{key}.prefix", entry.get("prefix"), "a VIP is one address: use /32 (IPv4) or /128 (IPv6)")
            prefix = None
        backend = entry.get("backend", DEFAULT_BACKEND)
        if not isinstance(backend, str) or backend not in backend_names:
            c.add(f"{key}.backend", backend, f"not a backend this deploy defines ({', '.join(backend_names)})")
        min_up = _int(c, f"{key}.min_up", entry.get("min_up", 1), 1, 100000)  # ober-health's range
        med = entry.get("med")
        if med is not None:
            med = _int(c, f"{key}.med", med, 0, 4294967295)
        communities = entry.get("communities", [])
        if not isinstance(communities, list | tuple):
            c.add(f"{key}.communities", communities, "must be a list like ['65000:100']")
            communities = []
        for ci, community in enumerate(communities):
            if not isinstance(community, str) or not _COMMUNITY.fullmatch(community):
                c.add(f"{key}.communities[{ci}]", community, "not a community ASN:VALUE")
            elif any(int(part) > 65535 for part in community.split(":")):
                c.add(f"{key}.communities[{ci}]", community, "community parts must be 0..65535")
        if prefix and isinstance(backend, str) and min_up is not None:
            vips.append(Vip(prefix, backend, min_up, med, tuple(str(x) for x in communities)))
    seen: set[str] = set()
    for vip in vips:
        if vip.prefix in seen:
            c.add("ober_vips", vip.prefix, "listed twice")
        seen.add(vip.prefix)
    return tuple(vips)


def expand_backends(c: _Collector, value: Any) -> tuple[Backend, ...]:
    """`"rgw[01-08].internal:7480"` (Slurm hostlist syntax, python-hostlist) → 8 `Backend`s."""
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, list | tuple) or not specs:
        c.add("ober_backends", value, "must be a hostlist like 'rgw[01-08].internal:7480' or a list of them")
        return ()
    backends: list[Backend] = []
    for index, spec in enumerate(specs):
        key = "ober_backends" if isinstance(value, str) else f"ober_backends[{index}]"
        try:
            entries = hostlist.expand_hostlist(spec) if isinstance(spec, str) else None
        except hostlist.BadHostlist as error:
            c.add(key, spec, f"malformed hostlist ({error})")
            continue
        if not entries:
            c.add(key, spec, "malformed hostlist (expected 'host[range]:port')")
            continue
        for entry in entries:
            host, sep, port_text = entry.rpartition(":")
            host = host.strip("[]")
            if not sep or not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
                c.add(key, spec, f"{entry!r} has no valid :port")
                break
            if not _HOSTNAME.fullmatch(host) and not _is_ip(host):
                c.add(key, spec, f"{host!r} is not a hostname or IP address")
                break
            backends.append(Backend(f"rgw{len(backends) + 1}", host, int(port_text)))
    seen: set[tuple[str, int]] = set()
    for backend in backends:
        if (backend.host, backend.port) in seen:
            c.add("ober_backends", f"{backend.host}:{backend.port}", "listed twice")
        seen.add((backend.host, backend.port))
    return tuple(backends)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


Resolver = Callable[[str], list[str]]


def resolve(name: str, timeout: float = 3.0) -> list[str]:
    """Addresses of `name` as the controller's resolver sees them ([] when it does not resolve in time)."""

    found: list[str] = []

    def lookup() -> None:
        with contextlib.suppress(OSError):
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            found.extend(sorted({str(info[4][0]) for info in infos}))

    # a daemon thread: a resolver that hangs past `timeout` is abandoned, not waited for (an executor's
    # shutdown, or its join at exit, would wait for it)
    thread = threading.Thread(target=lookup, name=f"resolve {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    return list(found) if not thread.is_alive() else []


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # permission denied, name too long
        return False


def _inside(addresses: Iterable[str], networks: tuple[str, ...]) -> bool:
    nets = [ipaddress.ip_network(n) for n in networks]
    return all(any(ipaddress.ip_address(a) in net for net in nets) for a in addresses)


def _health(c: _Collector, value: Any) -> HealthTimers:
    if value is None:
        return HealthTimers()
    if not isinstance(value, Mapping):
        c.add("ober_health", value, "must be a mapping of interval/timeout/rise/fall")
        return HealthTimers()
    out: dict[str, Any] = {}
    for name, raw in value.items():
        if name not in _HEALTH_KEYS:
            c.add(f"ober_health.{name}", raw, f"unknown key (known: {', '.join(_HEALTH_KEYS)})")
            continue
        kind, low, high = _HEALTH_KEYS[name]
        ok_type = isinstance(raw, int | float) if kind is float else isinstance(raw, int)
        if isinstance(raw, bool) or not ok_type:
            c.add(f"ober_health.{name}", raw, f"not a {kind.__name__}")
        elif not low <= raw <= high:
            c.add(f"ober_health.{name}", raw, f"out of range {low:g}..{high:g}")
        else:
            out[name] = kind(raw)
    timers = HealthTimers(**out)
    if timers.timeout > timers.interval * 10:
        c.add("ober_health.timeout", timers.timeout, "longer than 10 intervals: the watchdog would fire")
    return timers


def node_settings(
    host: str, data: Mapping[str, Any], host_address: str | None = None, resolver: Resolver = resolve
) -> NodeSettings:
    """Validate one host's data; raise `InventoryError` listing every problem found."""
    c = _Collector(host)
    for key in sorted(k for k in data if k.startswith(KEY_PREFIX) and k not in KNOWN_KEYS):
        c.add(key, data[key], "unknown ober_ key (a typo?)")

    local_asn = _int(c, "ober_local_asn", data.get("ober_local_asn"), *ASN_RANGE)
    router_id_raw = data.get("ober_router_id") or host_address
    router_id = _address(c, "ober_router_id", router_id_raw, version=4)
    local_ipv4 = data.get("ober_local_ipv4")
    local_ipv4 = _address(c, "ober_local_ipv4", local_ipv4, 4) if local_ipv4 is not None else router_id
    local_ipv6 = data.get("ober_local_ipv6")
    local_ipv6 = _address(c, "ober_local_ipv6", local_ipv6, 6) if local_ipv6 is not None else None
    peers = _peers(c, data.get("ober_peers"))
    hold_time = _int(c, "ober_hold_time", data.get("ober_hold_time", 9), *HOLD_TIME_RANGE) or 9
    backend_names = (DEFAULT_BACKEND,)
    vips = _vips(c, data.get("ober_vips"), backend_names)
    backends = expand_backends(c, data.get("ober_backends"))
    check_path = data.get("ober_backend_check_path", "/")
    if not isinstance(check_path, str) or not check_path.startswith("/") or any(ch.isspace() for ch in check_path):
        c.add("ober_backend_check_path", check_path, "must be an absolute URL path without spaces")
        check_path = "/"

    certificates = data.get("ober_tls_certificates", [])
    if isinstance(certificates, str):
        certificates = [certificates]
    if not isinstance(certificates, list | tuple):
        c.add("ober_tls_certificates", certificates, "must be a list of PEM bundle paths on the controller")
        certificates = []
    tls: list[Path] = []
    for index, path in enumerate(certificates):
        problem = certificate_problem(Path(str(path)))
        if problem:
            c.add(f"ober_tls_certificates[{index}]", str(path), problem)
        else:
            tls.append(Path(str(path)))
    if len({p.name for p in tls}) != len(tls):
        c.add("ober_tls_certificates", [str(p) for p in tls], "two bundles share a file name")
    http = _bool(c, "ober_http", data.get("ober_http", False))
    if not certificates and not http:
        c.add("ober_tls_certificates", certificates, "empty and ober_http is off: no frontend would serve the VIPs")

    whitelist_routers = _networks(c, "ober_whitelist_routers", data.get("ober_whitelist_routers", []))
    whitelist_frontend = _networks(c, "ober_whitelist_frontend", data.get("ober_whitelist_frontend", []))
    whitelist_backend = _networks(c, "ober_whitelist_backend", data.get("ober_whitelist_backend", []))
    if whitelist_routers:
        for index, peer in enumerate(peers):
            if not _inside([peer.address], whitelist_routers):
                c.add(f"ober_peers[{index}].address", peer.address, "not inside ober_whitelist_routers")

    check_dns = _bool(c, "ober_check_dns", data.get("ober_check_dns", True))
    for backend in backends:
        if _is_ip(backend.host):
            addresses = [backend.host]
        elif check_dns:
            addresses = resolver(backend.host)
            if not addresses:
                c.add("ober_backends", backend.host, "does not resolve (on the controller; ober_check_dns=False skips)")
                continue
        else:
            continue
        if whitelist_backend and not _inside(addresses, whitelist_backend):
            c.add("ober_backends", f"{backend.host} ({', '.join(addresses)})", "not inside ober_whitelist_backend")

    health = _health(c, data.get("ober_health"))
    kernel_tuning = _bool(c, "ober_kernel_tuning", data.get("ober_kernel_tuning", True))
    repository = data.get("ober_haproxy_repository")
    if repository is not None and (
        not isinstance(repository, str) or not repository.strip() or any(ch in repository for ch in "\r\n\0")
    ):  # one line: a newline would add lines of its own to the .repo file or the apt source
        c.add("ober_haproxy_repository", repository, "must be an apt source line or a dnf baseurl")
        repository = None
    wheels_dir = data.get("ober_wheels_dir")
    if wheels_dir is not None and not _is_dir(Path(str(wheels_dir))):
        c.add("ober_wheels_dir", wheels_dir, "not a directory on the controller")
        wheels_dir = None
    maxconn = _int(c, "ober_maxconn", data.get("ober_maxconn", 100000), 100, 10_000_000) or 100000
    hsts_max_age = _int(c, "ober_hsts_max_age", data.get("ober_hsts_max_age", 0), *HSTS_MAX_AGE_RANGE) or 0
    if hsts_max_age and not certificates:
        c.add("ober_hsts_max_age", hsts_max_age, "set, but ober_tls_certificates is empty: no TLS response to carry it")

    for version in {vip.version for vip in vips}:
        if not any(peer.version == version for peer in peers):
            c.add("ober_peers", [p.address for p in peers], f"no IPv{version} peer for the IPv{version} VIPs")
        if version == 6 and local_ipv6 is None and any(p.version == 6 for p in peers):
            c.add("ober_local_ipv6", None, "needed for the IPv6 session (the node's own IPv6 address)")

    if c.problems:
        raise InventoryError(c.problems)
    assert local_asn is not None and router_id is not None
    return NodeSettings(
        host=host,
        local_asn=local_asn,
        router_id=router_id,
        local_ipv4=local_ipv4,
        local_ipv6=local_ipv6,
        peers=peers,
        hold_time=hold_time,
        vips=vips,
        backends=backends,
        backend_check_path=check_path,
        tls_certificates=tuple(tls),
        http=http,
        whitelist_routers=whitelist_routers,
        whitelist_frontend=whitelist_frontend,
        whitelist_backend=whitelist_backend,
        health=health,
        kernel_tuning=kernel_tuning,
        haproxy_repository=repository,
        wheels_dir=Path(str(wheels_dir)) if wheels_dir else None,
        maxconn=maxconn,
        backend_names=backend_names,
        hsts_max_age=hsts_max_age,
    )


def validate_inventory(hosts: Iterable[tuple[str, Mapping[str, Any], str | None]]) -> dict[str, NodeSettings]:
    """Validate every host at once; one `InventoryError` lists the problems of all hosts."""
    settings: dict[str, NodeSettings] = {}
    problems: list[str] = []
    for name, data, address in hosts:
        try:
            settings[name] = node_settings(name, data, address)
        except InventoryError as error:
            problems.extend(error.problems)
    if problems:
        raise InventoryError(problems)
    return settings
