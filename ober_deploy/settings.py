"""Validate one host's `ober_*` inventory data into `NodeSettings`, the only thing templates and tasks read.

A typo in an inventory must never reach a node: a VIP of `203.0.113.300/32` or an ASN of 0 would at best
fail a reload, at worst announce the wrong prefix. So every key is checked on the controller, before any
operation is planned, and every problem is reported as one line naming the host, the key and the value:

    ober-n1: ober_vips[0].prefix: '203.0.113.300/32' is not an IP prefix (e.g. 203.0.113.10/32)

What a VIP, a health timer, an ASN or a hold time may be is the node's configuration model
(ober_health/config.py): this module calls its parsers with the inventory's key names and adds only what
the controller alone can check (DNS, certificates, whitelists, rules across keys of the inventory), so
the controller and ober-health cannot disagree. health.toml is the model's own dump of `node_config()`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hostlist

from ober_deploy.keys import KNOWN_KEYS, METRICS_ALLOW_DEFAULT, value
from ober_deploy.tls import certificate_problem, ocsp_problem
from ober_health.config import (
    NOT_SET,
    TIMERS,
    BgpConfig,
    Config,
    HealthConfig,
    PeerConfig,
    VipConfig,
    check_vips,
    dump_config,
    parse_address,
    parse_asn,
    parse_health,
    parse_hold_time,
    parse_router_id,
    parse_vip,
)
from ober_health.paths import PATHS, NodePaths

KEY_PREFIX = "ober_"
DEFAULT_BACKEND = "be_rgw"  # the HAProxy backend of `ober_backends`, for every VIP without a pool of its own
HSTS_MAX_AGE_RANGE = (0, 63072000)  # off .. two years (Mozilla's recommended value)
# ports the node already serves: S3 on the VIPs, HAProxy's stats frontend and ober-health's status endpoint
_METRICS_PORTS_TAKEN = {80: "the S3 frontend", 443: "the S3 frontend", 8404: "HAProxy's stats", 8405: "ober-health"}
_HOSTNAME = re.compile(  # fullmatch: `$` would accept a trailing newline
    r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class InventoryError(ValueError):
    """The inventory cannot be deployed; `problems` holds one `host: key: value problem` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Peer(PeerConfig):
    """A BGP router this node peers with (the model's peer, its local address from ober_local_ipv4/6);
    `bfd` (FRR's bfdd on the node) is the controller's alone."""

    bfd: bool = False


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
class Pool:
    """An HAProxy backend: RGW daemons named by a hostlist (`ober_backends`, or a VIP's own `backends`)."""

    name: str
    servers: tuple[Backend, ...]


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
    vips: tuple[VipConfig, ...]
    backends: tuple[Backend, ...]
    backend_check_path: str
    tls_certificates: tuple[Path, ...]
    http: bool
    whitelist_routers: tuple[str, ...]
    whitelist_frontend: tuple[str, ...]
    whitelist_backend: tuple[str, ...]
    health: HealthConfig
    kernel_tuning: bool
    haproxy_repository: str | None
    wheels_dir: Path | None
    maxconn: int
    pools: tuple[Pool, ...] = field(default=())  # the first is `ober_backends` (DEFAULT_BACKEND)
    hsts_max_age: int = 0  # Strict-Transport-Security on TLS responses; 0: no header
    ocsp_stapling: bool = False  # ober-ocsp.timer fetches each bundle's OCSP response, HAProxy staples it
    metrics_bind: str | None = None  # "address:port" (IPv6 in brackets) of the metrics frontend; None: none
    metrics_allow: tuple[str, ...] = METRICS_ALLOW_DEFAULT  # sources it answers (prefixes)

    @property
    def backend_names(self) -> tuple[str, ...]:
        return tuple(pool.name for pool in self.pools)

    @property
    def bfd(self) -> bool:
        return any(peer.bfd for peer in self.peers)

    @property
    def families(self) -> tuple[int, ...]:
        return tuple(sorted({vip.version for vip in self.vips}))

    def local_address(self, version: int) -> str | None:
        return self.local_ipv4 if version == 4 else self.local_ipv6

    def node_config(self, paths: NodePaths = PATHS) -> Config:
        """The node's configuration model: what health.toml says, with the node files of `paths`."""
        return Config(
            health=self.health.at(paths),
            vips=self.vips,
            bgp=BgpConfig(local_asn=self.local_asn, router_id=self.router_id, hold_time=self.hold_time),
            peers=tuple(PeerConfig(peer.address, peer.asn, peer.local_address) for peer in self.peers),
        )

    def health_toml(self, paths: NodePaths = PATHS) -> str:
        return dump_config(self.node_config(paths))


class _Collector:
    """Collects problems of one host so the operator sees all of them in one run.

    `errors` takes the model's lines (`key: value problem`, from ober_health.config's parsers) and the
    controller's own (`add`); `problems` names the host on each."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.errors: list[str] = []

    def add(self, key: str, value: Any, why: str) -> None:
        self.errors.append(f"{key}: {value!r} {why}")

    @property
    def problems(self) -> list[str]:
        return [f"{self.host}: {line}" for line in self.errors]


def _int(c: _Collector, key: str, value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(key, value, "is not an integer")
        return None
    if not low <= value <= high:
        c.add(key, value, f"is out of range ({low}..{high})")
        return None
    return value


def _bool(c: _Collector, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        c.add(key, value, "is not true or false")
        return False
    return value


def _listen(c: _Collector, key: str, value: Any) -> str | None:
    """`address:port` (IPv6 as `[address]:port`) as HAProxy's `bind` wants it, or None (with a problem)."""
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    bracketed = host.startswith("[") and host.endswith("]")
    if not sep or not (port.isascii() and port.isdigit()) or (":" in host and not bracketed):
        c.add(key, value, "is not address:port (IPv6 as [address]:port)")
        return None
    address = host[1:-1] if bracketed else host
    if not _is_ip(address) or "%" in address:
        c.add(key, value, f"is not address:port ({address!r} is not an IP address)")
        return None
    address = str(ipaddress.ip_address(address))
    if bracketed != (":" in address):
        c.add(key, value, "is not address:port (IPv6 as [address]:port)")
        return None
    if not 1 <= int(port) <= 65535:
        c.add(key, value, "has a port out of range (1..65535)")
        return None
    if int(port) in _METRICS_PORTS_TAKEN:
        c.add(key, value, f"has port {int(port)}, {_METRICS_PORTS_TAKEN[int(port)]}'s: choose another (e.g. 9101)")
        return None
    return f"[{address}]:{int(port)}" if bracketed else f"{address}:{int(port)}"


def _networks(c: _Collector, key: str, value: Any, resolver: Resolver) -> tuple[str, ...]:
    """A whitelist: addresses, prefixes and Slurm hostlists of names (`weka[001-100]`), as a list or one
    comma-separated string; each name is resolved here, on the controller, to its addresses (/32, /128):
    HAProxy's ACL files and the controller's checks take addresses, and a name that resolves nowhere is
    a typo the operator hears about before any node is touched."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        c.add(key, value, "is not a list of addresses, prefixes or hostlists")
        return ()
    out: list[str] = []
    names: dict[str, tuple[str, Any]] = {}  # name -> (key of its entry, the entry) for the messages
    for index, item in enumerate(items):
        where = key if isinstance(value, str) else f"{key}[{index}]"
        try:
            if not isinstance(item, str):  # not integers (10 would be 0.0.0.10/32)
                raise hostlist.BadHostlist(f"{item!r} is not a string")
            entries = [entry.strip() for entry in hostlist.expand_hostlist(item) if entry.strip()]
        except hostlist.BadHostlist as error:
            c.add(where, item, f"is not an address, prefix or hostlist ({error})")
            continue
        for entry in entries:
            network = _network(entry)
            if network is not None:
                out.append(network)
            elif "/" not in entry and "%" not in entry and _HOSTNAME.fullmatch(entry):
                names.setdefault(entry, (where, item))
            else:
                c.add(where, item, f"has {entry!r}: not an IP address, a prefix without host bits or a host name")
    for name, addresses in resolve_all(list(names), resolver).items():
        if not addresses:
            where, item = names[name]
            c.add(where, item, f"names {name!r}, which does not resolve (on the controller)")
        out.extend(str(ipaddress.ip_network(address)) for address in addresses)
    return tuple(dict.fromkeys(out))


def _network(text: str) -> str | None:
    """`text` as a normalised network, or None when it is not an address or a prefix without host bits."""
    if "%" in text:  # no IPv6 zone: not something an ACL can match
        return None
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError:
        return None


def _peers(c: _Collector, value: Any) -> tuple[Peer, ...]:
    if value is None:
        c.errors.append(f"ober_peers: {NOT_SET}")
        return ()
    if not isinstance(value, list | tuple) or not value:
        c.add("ober_peers", value, "is not a non-empty list of {address, asn}")
        return ()
    peers: list[Peer] = []
    for index, item in enumerate(value):
        key = f"ober_peers[{index}]"
        if not isinstance(item, Mapping):
            c.add(key, item, "is not a mapping with address and asn")
            continue
        unknown = set(item) - {"address", "asn", "bfd"}
        for name in sorted(unknown, key=repr):  # keys may be of mixed types
            c.errors.append(f"{key}.{name}: unknown key (value {item[name]!r}; known: address, asn, bfd)")
        address = parse_address(c.errors, f"{key}.address", item.get("address"))
        asn = parse_asn(c.errors, f"{key}.asn", item.get("asn"))
        bfd = _bool(c, f"{key}.bfd", item.get("bfd", False))
        if address and asn:
            peers.append(Peer(address, asn, bfd=bfd))
    seen: set[str] = set()
    for index, peer in enumerate(peers):
        if peer.address in seen:
            c.add(f"ober_peers[{index}].address", peer.address, "is listed twice")
        seen.add(peer.address)
    return tuple(peers)


def _vips(
    c: _Collector, value: Any, default_pool: Pool, check: Callable[[str, Any], Pool | None]
) -> tuple[tuple[VipConfig, ...], tuple[Pool, ...]]:
    """The VIPs (the model's parser, with the inventory's keys) and the HAProxy backends they use: the
    default one (`ober_backends`) and those VIPs bring with their own `backends` hostlist. One string is
    a comma-separated list of prefixes (`--data ober_vips=203.0.113.10/32` on pyinfra's command line)."""
    if value is None:
        c.errors.append(f"ober_vips: {NOT_SET}")
        return (), (default_pool,)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        c.add("ober_vips", value, "is not a non-empty list of prefixes or {prefix, backend, backends, ...}")
        return (), (default_pool,)
    pools: dict[str, Pool] = {default_pool.name: default_pool}
    vips: list[tuple[int, VipConfig]] = []
    for index, item in enumerate(value):
        key = f"ober_vips[{index}]"
        entry: Any = {"prefix": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping):
            c.add(key, item, "is not a prefix or a mapping with prefix")
            continue
        entry = dict(entry)
        servers = entry.pop("backends", None)
        start = len(c.errors)
        if servers is not None:
            name = entry.get("backend")
            if name is None:
                name = entry["backend"] = f"be_vip{index}"
            pool = check(f"{key}.backends", servers)
            if pool is not None and isinstance(name, str):
                pool = Pool(name, pool.servers)
                if name == default_pool.name:
                    c.add(f"{key}.backend", name, "is the backend of ober_backends: name the VIP's own pool otherwise")
                elif name in pools and pools[name].servers != pool.servers:
                    c.add(f"{key}.backends", servers, f"differs from the servers another VIP gives backend {name!r}")
                else:
                    pools[name] = pool
        entry.setdefault("backend", default_pool.name)
        vip = parse_vip(c.errors, key, entry)
        if vip is not None and len(c.errors) == start:
            vips.append((index, vip))
    for index, vip in vips:
        if vip.backend not in pools:
            c.add(
                f"ober_vips[{index}].backend",
                vip.backend,
                f"is not a backend this deploy defines ({', '.join(pools)}; a VIP's own pool: backends = hostlist)",
            )
    check_vips(c.errors, "ober_vips", vips, None, "ober_peers")
    return tuple(vip for _, vip in vips), tuple(pools.values())


def expand_backends(c: _Collector, value: Any, key: str = "ober_backends") -> tuple[Backend, ...]:
    """`"rgw[01-08].internal:7480"` (Slurm hostlist syntax, python-hostlist) → 8 `Backend`s."""
    if value is None:
        c.errors.append(f"{key}: {NOT_SET}")
        return ()
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, list | tuple) or not specs:
        c.add(key, value, "is not a hostlist like 'rgw[01-08].internal:7480' or a list of them")
        return ()
    backends: list[Backend] = []
    for index, spec in enumerate(specs):
        where = key if isinstance(value, str) else f"{key}[{index}]"
        try:
            entries = hostlist.expand_hostlist(spec) if isinstance(spec, str) else None
        except hostlist.BadHostlist as error:
            c.add(where, spec, f"is a malformed hostlist ({error})")
            continue
        if not entries:
            c.add(where, spec, "is a malformed hostlist (expected 'host[range]:port')")
            continue
        for entry in entries:
            host, sep, port_text = entry.rpartition(":")
            host = host.strip("[]")
            if not sep or not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
                c.add(where, spec, f"has no valid :port in {entry!r}")
                break
            if not _HOSTNAME.fullmatch(host) and not _is_ip(host):
                c.add(where, spec, f"names {host!r}, not a hostname or IP address")
                break
            backends.append(Backend(f"rgw{len(backends) + 1}", host, int(port_text)))
    seen: set[tuple[str, int]] = set()
    for backend in backends:
        if (backend.host, backend.port) in seen:
            c.add(key, f"{backend.host}:{backend.port}", "is listed twice")
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


def resolve_all(names: list[str], resolver: Resolver) -> dict[str, list[str]]:
    """Each name's addresses, the lookups side by side: `weka[001-100]` must not cost 100 resolver
    timeouts in a row when the site's DNS is slow (`resolve` bounds each one)."""
    found: dict[str, list[str]] = {}

    def lookup(name: str) -> None:
        found[name] = resolver(name)

    threads = [threading.Thread(target=lookup, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: found.get(name, []) for name in names}


def memoized(resolver: Resolver) -> Resolver:
    """`resolver` asked once per name: every host of a fleet usually shares its whitelists and backends."""
    cache: dict[str, list[str]] = {}

    def lookup(name: str) -> list[str]:
        if name not in cache:
            cache[name] = resolver(name)
        return list(cache[name])

    return lookup


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # permission denied, name too long
        return False


def _inside(addresses: Iterable[str], networks: tuple[str, ...]) -> bool:
    nets = [ipaddress.ip_network(n) for n in networks]
    return all(any(ipaddress.ip_address(a) in net for net in nets) for a in addresses)


def node_settings(
    host: str, data: Mapping[str, Any], host_address: str | None = None, resolver: Resolver = resolve
) -> NodeSettings:
    """Validate one host's data; raise `InventoryError` listing every problem found."""
    c = _Collector(host)
    for key in sorted(k for k in data if k.startswith(KEY_PREFIX) and k not in KNOWN_KEYS):
        c.add(key, data[key], "is not a known ober_ key (a typo?)")

    local_asn = parse_asn(c.errors, "ober_local_asn", data.get("ober_local_asn"))
    if data.get("ober_router_id") is None and host_address is None:
        c.errors.append(f"ober_router_id: {NOT_SET} (the default, the host's address, is not an IP: {host!r})")
        router_id = None
    else:
        router_id = parse_router_id(c.errors, "ober_router_id", data.get("ober_router_id") or host_address)
    local_ipv4 = value(data, "ober_local_ipv4")
    local_ipv4 = parse_address(c.errors, "ober_local_ipv4", local_ipv4, 4) if local_ipv4 is not None else router_id
    local_ipv6 = value(data, "ober_local_ipv6")
    local_ipv6 = parse_address(c.errors, "ober_local_ipv6", local_ipv6, 6) if local_ipv6 is not None else None
    peers = tuple(
        dataclasses.replace(peer, local_address=local_ipv4 if peer.version == 4 else local_ipv6)
        for peer in _peers(c, data.get("ober_peers"))
    )
    hold_time = parse_hold_time(c.errors, "ober_hold_time", value(data, "ober_hold_time"))
    backends = expand_backends(c, data.get("ober_backends"))

    def pool(key: str, value: Any) -> Pool | None:
        start = len(c.errors)
        servers = expand_backends(c, value, key)
        return Pool(key, servers) if servers and len(c.errors) == start else None

    vips, pools = _vips(c, data.get("ober_vips"), Pool(DEFAULT_BACKEND, backends), pool)
    own: dict[str, list[str]] = {}  # an address of this node or its peers -> the keys that give it
    for key, address in (
        ("the host's address", host_address),
        ("ober_router_id", router_id),
        ("ober_local_ipv4", local_ipv4),
        ("ober_local_ipv6", local_ipv6),
        *((f"ober_peers[{index}].address", peer.address) for index, peer in enumerate(peers)),
    ):
        if address:
            own.setdefault(address, []).append(key)
    for index, vip in enumerate(vips):
        holders = own.get(str(ipaddress.ip_network(vip.prefix).network_address))
        if holders:  # the node's own address would be bound twice; a peer's would steal the router's
            c.add(f"ober_vips[{index}].prefix", vip.prefix, f"is {', '.join(holders)}: a VIP is an address of its own")
    families = {peer.version for peer in peers}
    if peers:
        check_vips(c.errors, "ober_vips", list(enumerate(vips)), families, "ober_peers entry")
    check_path = value(data, "ober_backend_check_path")
    if not isinstance(check_path, str) or not check_path.startswith("/") or any(ch.isspace() for ch in check_path):
        c.add("ober_backend_check_path", check_path, "is not an absolute URL path without spaces")
        check_path = "/"

    certificates = value(data, "ober_tls_certificates")
    if isinstance(certificates, str):
        certificates = [certificates]
    if not isinstance(certificates, list | tuple):
        c.add("ober_tls_certificates", certificates, "is not a list of PEM bundle paths on the controller")
        certificates = []
    tls: list[Path] = []
    for index, path in enumerate(certificates):
        problem = certificate_problem(Path(str(path)))
        if problem:
            c.add(f"ober_tls_certificates[{index}]", str(path), f"is unusable: {problem}")
        else:
            tls.append(Path(str(path)))
    if len({p.name for p in tls}) != len(tls):
        c.add("ober_tls_certificates", [str(p) for p in tls], "has two bundles with the same file name")
    http = _bool(c, "ober_http", value(data, "ober_http"))
    if not certificates and not http:
        c.add("ober_tls_certificates", certificates, "is empty and ober_http is off: no frontend would serve the VIPs")

    whitelist_routers = _networks(c, "ober_whitelist_routers", value(data, "ober_whitelist_routers"), resolver)
    whitelist_frontend = _networks(c, "ober_whitelist_frontend", value(data, "ober_whitelist_frontend"), resolver)
    whitelist_backend = _networks(c, "ober_whitelist_backend", value(data, "ober_whitelist_backend"), resolver)
    if whitelist_routers:
        for index, peer in enumerate(peers):
            if not _inside([peer.address], whitelist_routers):
                c.add(f"ober_peers[{index}].address", peer.address, "is not inside ober_whitelist_routers")

    check_dns = _bool(c, "ober_check_dns", value(data, "ober_check_dns"))
    names = [backend.host for each in pools for backend in each.servers if not _is_ip(backend.host)]
    dns = resolve_all(list(dict.fromkeys(names)), resolver) if check_dns else {}
    for each in pools:
        users = [index for index, vip in enumerate(vips) if vip.backend == each.name]
        key = "ober_backends" if each.name == DEFAULT_BACKEND or not users else f"ober_vips[{users[0]}].backends"
        for backend in each.servers:
            if _is_ip(backend.host):
                addresses = [backend.host]
            elif check_dns:
                addresses = dns[backend.host]
                if not addresses:
                    c.add(key, backend.host, "does not resolve (on the controller; ober_check_dns=False skips)")
                    continue
            else:
                continue
            if whitelist_backend and not _inside(addresses, whitelist_backend):
                c.add(key, f"{backend.host} ({', '.join(addresses)})", "is not inside ober_whitelist_backend")

    health = parse_health(c.errors, "ober_health", data.get("ober_health"), keys=(*TIMERS, "watch_haproxy"))
    health = dataclasses.replace(
        health, hardware_watchdog=_bool(c, "ober_hardware_watchdog", value(data, "ober_hardware_watchdog"))
    )
    kernel_tuning = _bool(c, "ober_kernel_tuning", value(data, "ober_kernel_tuning"))
    repository = data.get("ober_haproxy_repository")
    if repository is not None and (
        not isinstance(repository, str) or not repository.strip() or any(ch in repository for ch in "\r\n\0")
    ):  # one line: a newline would add lines of its own to the .repo file or the apt source
        c.add("ober_haproxy_repository", repository, "is not one apt source line or dnf baseurl")
        repository = None
    wheels_dir = data.get("ober_wheels_dir")
    if wheels_dir is not None and not _is_dir(Path(str(wheels_dir))):
        c.add("ober_wheels_dir", wheels_dir, "is not a directory on the controller")
        wheels_dir = None
    maxconn = _int(c, "ober_maxconn", value(data, "ober_maxconn"), 100, 10_000_000)
    hsts_max_age = _int(c, "ober_hsts_max_age", value(data, "ober_hsts_max_age"), *HSTS_MAX_AGE_RANGE)
    if hsts_max_age and not certificates:
        c.add(
            "ober_hsts_max_age", hsts_max_age, "is set, but ober_tls_certificates is empty: no TLS response to carry it"
        )
    ocsp_stapling = _bool(c, "ober_ocsp_stapling", value(data, "ober_ocsp_stapling"))
    if ocsp_stapling and not certificates:
        c.add("ober_ocsp_stapling", True, "is set, but ober_tls_certificates is empty: no certificate to staple for")
    for index, path in enumerate(tls if ocsp_stapling else []):
        problem = ocsp_problem(path)
        if problem:
            c.add(f"ober_tls_certificates[{index}]", str(path), f"cannot be stapled (ober_ocsp_stapling): {problem}")

    metrics_bind = value(data, "ober_metrics_bind")
    if metrics_bind is not None:
        metrics_bind = _listen(c, "ober_metrics_bind", metrics_bind)
    metrics_allow = _networks(c, "ober_metrics_allow", value(data, "ober_metrics_allow"), resolver)
    if not metrics_allow and not any(line.startswith("ober_metrics_allow") for line in c.errors):
        c.add("ober_metrics_allow", value(data, "ober_metrics_allow"), "is empty: no Prometheus could scrape the node")

    if 6 in families and local_ipv6 is None:
        c.add("ober_local_ipv6", None, "is needed for the IPv6 session (the node's own IPv6 address)")

    if c.errors:
        raise InventoryError(c.problems)
    assert local_asn is not None and router_id is not None and hold_time is not None and maxconn is not None
    assert hsts_max_age is not None
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
        pools=pools,
        hsts_max_age=hsts_max_age,
        ocsp_stapling=ocsp_stapling,
        metrics_bind=metrics_bind,
        metrics_allow=metrics_allow,
    )


def validate_inventory(hosts: Iterable[tuple[str, Mapping[str, Any], str | None]]) -> dict[str, NodeSettings]:
    """Validate every host at once; one `InventoryError` lists the problems of all hosts."""
    settings: dict[str, NodeSettings] = {}
    problems: list[str] = []
    resolver = memoized(resolve)
    for name, data, address in hosts:
        try:
            settings[name] = node_settings(name, data, address, resolver)
        except InventoryError as error:
            problems.extend(error.problems)
    if problems:
        raise InventoryError(problems)
    return settings
