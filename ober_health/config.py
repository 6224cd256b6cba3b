"""The node's configuration model: `/etc/ober/health.toml`, its types, defaults, ranges and parsers.

The health program decides routes, so a config it misreads is an outage. Every value is checked here,
once, and every error names the key and the value it got, e.g. ``vip[1].prefix: '203.0.113.300/32' is
not an IP prefix``. All errors are collected, not just the first, so an operator fixes them in one go.

This module is the one definition of what a VIP, a health timer, a peer's ASN or a hold time may be. The
deploy (ober_deploy/settings.py) validates the inventory by calling the same parsers with the
inventory's key names (``ober_vips[1].prefix``, ``ober_health.rise``), and writes health.toml with
`dump_config`, which `parse_config` reads back to the same `Config`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ober_health.paths import PATHS, NodePaths

DEFAULT_CONFIG_PATH = Path(PATHS.health_config)
DEFAULT_STATUS_LISTEN = PATHS.status_listen
DEFAULT_HOLD_TIME = 9
MED_RANGE = (0, 4294967295)
MIN_UP_RANGE = (1, 100000)
ASN_RANGE = (1, 4294967295)
HOLD_TIME_RANGE = (3, 65535)  # RFC 4271: 0 or at least 3; 0 (no keepalives) would hide a dead node forever

# fullmatch and ASCII digits: `$` would accept a trailing newline (a second line to ExaBGP) and `\d` Arabic digits
_COMMUNITY = re.compile(r"(\d{1,5}):(\d{1,5})", re.ASCII)
_LARGE_COMMUNITY = re.compile(r"^(\d{1,10}):(\d{1,10}):(\d{1,10})$")
_BACKEND_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
_HTTP_URL = re.compile(r"https?://[^/\s]+(/\S*)?")


class ConfigError(ValueError):
    """The config is unusable; `errors` lists every problem, one `key: value problem` line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class VipConfig:
    """One service address and what must be true on this node for it to be announced."""

    prefix: str  # one address: /32 or /128 (HAProxy binds it)
    backend: str | None = None
    min_up: int = 1
    med: int | None = None
    communities: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version

    @property
    def is_ipv6(self) -> bool:
        return self.version == 6

    @property
    def address(self) -> str:
        return str(ipaddress.ip_network(self.prefix).network_address)

    @property
    def bind_host(self) -> str:
        """The address as HAProxy's `bind` wants it (IPv6 in brackets)."""
        return f"[{self.address}]" if self.version == 6 else self.address


@dataclass(frozen=True)
class PeerConfig:
    """A BGP router this node peers with (ExaBGP's `neighbor`): the node knows its sessions from here, not
    only from the events ExaBGP happened to send (a session refused from the first OPEN is never "up")."""

    address: str
    asn: int
    local_address: str | None = None

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class BgpConfig:
    """The node's own BGP identity, as exabgp.conf has it."""

    local_asn: int
    router_id: str
    hold_time: int = DEFAULT_HOLD_TIME


@dataclass(frozen=True)
class HealthConfig:
    """Timers and paths of the health loop; the defaults are what the deploy ships (paths: ober_health/paths.py)."""

    interval: float = 0.2
    timeout: float = 0.5
    rise: int = 3
    fall: int = 2
    haproxy_url: str = PATHS.haproxy_health_url
    stats_socket: str = PATHS.ober_socket
    maintenance_file: str = PATHS.maintenance_file
    drain_file: str = PATHS.drain_file
    state_file: str = PATHS.state_file
    shutdown_ack_timeout: float = 1.0
    # a dead HAProxy withdraws at once: its master's exit (watched with a pidfd) or a refused connection to
    # haproxy_url; false leaves only the rise/fall polling (the benchmark's baseline)
    watch_haproxy: bool = True
    # `ober doctor`: a node without a hardware watchdog (or with systemd not using it) fails (true), or is
    # a warning (false: VMs and containers that have none; the inventory's ober_hardware_watchdog)
    hardware_watchdog: bool = True
    # the state as JSON over HTTP on loopback (`ober status` reads it when the state file cannot be written)
    status_listen: str = PATHS.status_listen

    def at(self, paths: NodePaths) -> HealthConfig:
        """These timers with the node files and sockets of `paths` (the deploy's, or a lab's)."""
        return dataclasses.replace(
            self,
            haproxy_url=paths.haproxy_health_url,
            stats_socket=paths.ober_socket,
            maintenance_file=paths.maintenance_file,
            drain_file=paths.drain_file,
            state_file=paths.state_file,
            status_listen=paths.status_listen,
        )

    @property
    def watchdog_seconds(self) -> float:
        """systemd's WatchdogSec for the unit that runs ober-health, in seconds (to the millisecond).

        One check loop costs at most interval + 2 x timeout: every I/O in it is bounded by `timeout` (the
        HTTP check, the stats socket), and the decider only waits on its queue. Two such loops without a
        ping and the unit is killed: 2.4 s at the default timers, so a hung health program loses its
        routes within 3 s. The worst gap between pings measured under load (bench/watchdoggap.py: 611 ms
        at load 7-8 with reloads) leaves 3.9x margin; a floor of 2 s keeps fast timers from a hair trigger.
        """
        return max(2.0, round(2 * (self.interval + 2 * self.timeout), 3))


@dataclass(frozen=True)
class Config:
    health: HealthConfig = field(default_factory=HealthConfig)
    vips: tuple[VipConfig, ...] = ()
    bgp: BgpConfig | None = None
    peers: tuple[PeerConfig, ...] = ()

    def peers_of(self, version: int) -> tuple[PeerConfig, ...]:
        """The configured peers of one address family (a VIP of that family rides only their sessions)."""
        return tuple(peer for peer in self.peers if peer.version == version)

    @property
    def hold_time(self) -> int:
        return self.bgp.hold_time if self.bgp is not None else DEFAULT_HOLD_TIME


# the check loop's timers: key -> (type, minimum, maximum)
TIMERS: dict[str, tuple[type, float, float]] = {
    "interval": (float, 0.01, 60.0),
    "timeout": (float, 0.01, 60.0),
    "rise": (int, 1, 1000),
    "fall": (int, 1, 1000),
}
_HEALTH_NUMBERS: dict[str, tuple[type, float, float]] = {
    **TIMERS,
    "shutdown_ack_timeout": (float, 0.0, 1.5),  # ExaBGP SIGKILLs us 2 s after SIGTERM
}
_HEALTH_STRINGS = ("haproxy_url", "stats_socket", "maintenance_file", "drain_file", "state_file")
_HEALTH_MAY_BE_EMPTY = ("status_listen",)  # "" switches the status endpoint off
_HEALTH_BOOLS = ("watch_haproxy", "hardware_watchdog")
HEALTH_KEYS = (*_HEALTH_NUMBERS, *_HEALTH_STRINGS, *_HEALTH_BOOLS, *_HEALTH_MAY_BE_EMPTY)
VIP_KEYS = ("prefix", "backend", "min_up", "med", "communities")


NOT_SET = "required, not set"  # the one message for a required value that is absent, node and inventory alike


def parse_number(errors: list[str], key: str, value: Any, kind: type, low: float, high: float) -> Any:
    """`value` as `kind` within low..high, or None with one line in `errors` naming `key` and `value`."""
    if value is None:
        errors.append(f"{key}: {NOT_SET}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append(f"{key}: {value!r} is not a number")
        return None
    if kind is int and not isinstance(value, int):
        errors.append(f"{key}: {value!r} is not a whole number")
        return None
    if not low <= value <= high:
        errors.append(f"{key}: {value!r} is out of range ({_bound(kind, low)}..{_bound(kind, high)})")
        return None
    return kind(value)


def _bound(kind: type, value: float) -> str:
    return str(int(value)) if kind is int else f"{value:g}"


HEALTH_RANGES_TEXT = ", ".join(
    f"{key} {_bound(kind, low)}..{_bound(kind, high)}{' s' if kind is float else ''}"
    for key, (kind, low, high) in TIMERS.items()
)


def parse_asn(errors: list[str], key: str, value: Any) -> int | None:
    return parse_number(errors, key, value, int, *ASN_RANGE)  # type: ignore[no-any-return]


def parse_hold_time(errors: list[str], key: str, value: Any) -> int | None:
    return parse_number(errors, key, value, int, *HOLD_TIME_RANGE)  # type: ignore[no-any-return]


def parse_health(errors: list[str], where: str, raw: Any, keys: tuple[str, ...] = HEALTH_KEYS) -> HealthConfig:
    """The [health] table (`where` = "health"), or the deploy's `ober_health` (the TIMERS keys and watch_haproxy)."""
    if raw is None:
        return HealthConfig()
    if not _is_table(errors, where, raw, keys):
        return HealthConfig()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{where}.{key}"
        if key not in keys:
            continue
        if key in _HEALTH_NUMBERS:
            kind, low, high = _HEALTH_NUMBERS[key]
            parsed = parse_number(errors, name, value, kind, low, high)
            if parsed is not None:
                values[key] = parsed
        elif key in _HEALTH_STRINGS:
            if not isinstance(value, str) or not value:
                errors.append(f"{name}: {value!r} is not a non-empty string")
            else:
                values[key] = value
        elif key in _HEALTH_BOOLS:
            if not isinstance(value, bool):
                errors.append(f"{name}: {value!r} is not true or false")
            else:
                values[key] = value
        elif not isinstance(value, str):  # _HEALTH_MAY_BE_EMPTY
            errors.append(f"{name}: {value!r} is not a string")
        else:
            values[key] = value
    url = values.get("haproxy_url")
    if url is not None and not _HTTP_URL.fullmatch(url):
        errors.append(f"{where}.haproxy_url: {url!r} is not an http(s) URL")
    listen = values.get("status_listen")
    if listen and parse_listen(listen) is None:
        errors.append(
            f"{where}.status_listen: {listen!r} is not a loopback address and port"
            ' (e.g. "127.0.0.1:8405" or "[::1]:8405"; "" for none)'
        )
    config = HealthConfig(**values)
    if config.timeout > max(config.interval, 0) * 10:
        errors.append(
            f"{where}.timeout: {config.timeout!r} is more than 10x {where}.interval ({config.interval!r}):"
            " a hung HAProxy would be noticed too late"
        )
    return config


def _is_table(errors: list[str], where: str, raw: Any, known: tuple[str, ...]) -> bool:
    """`raw` is a TOML table with only `known` keys; each problem is appended to `errors`, named by `where`.
    False only when it is not a table at all (unknown keys are reported, the known ones still parsed)."""
    if not isinstance(raw, dict):
        errors.append(f"{where}: {raw!r} is not a table")
        return False
    for key in sorted(raw.keys() - set(known), key=repr):  # keys may be of mixed types
        errors.append(f"{where}.{key}: unknown key (value {raw[key]!r}; known: {', '.join(known)})")
    return True


def parse_prefix(errors: list[str], key: str, value: Any) -> str | None:
    """A VIP's prefix: one IPv4 or IPv6 address with its length (/32, /128), normalised, of an address a
    router can forward clients to (not loopback, multicast, link-local, unspecified or reserved)."""
    if value is None:
        errors.append(f"{key}: {NOT_SET}")
        return None
    if not isinstance(value, str):
        errors.append(f"{key}: {value!r} is not a string")
        return None
    try:
        if "/" not in value:
            raise ValueError("no prefix length")
        if "%" in value:
            raise ValueError("scoped IPv6 address: not a route ExaBGP can announce")
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(value, strict=False) if "%" not in value and "/" in value else None
        except ValueError:
            loose = None
        hint = f"host bits set: did you mean {loose}?" if loose is not None else "e.g. 203.0.113.10/32"
        errors.append(f"{key}: {value!r} is not an IP prefix ({hint})")
        return None
    if network.num_addresses != 1:
        errors.append(f"{key}: {value!r} is not one address: a VIP is a /32 (IPv4) or a /128 (IPv6)")
        return None
    kind = unroutable(network.network_address)
    if kind:
        errors.append(f"{key}: {value!r} is {kind} address: a VIP must be one a router forwards clients to")
        return None
    return str(network)


def unroutable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of address `address` is when no router would forward a client's packets to it as a VIP
    (announced, such a route is dropped at best, and a loopback or 0.0.0.0 VIP is bound by everything)."""
    if address.is_unspecified:
        return "the unspecified"
    if address.is_loopback:
        return "a loopback"
    if address.is_multicast:
        return "a multicast"
    if address.is_link_local:
        return "a link-local"
    if address.version == 4 and address.is_reserved:  # 240.0.0.0/4, 255.255.255.255
        return "a reserved"
    return None


def parse_vip(errors: list[str], where: str, raw: Any) -> VipConfig | None:
    """One [[vip]] table (`where` = "vip[1]"), or one entry of the deploy's `ober_vips`."""
    start = len(errors)
    if not _is_table(errors, where, raw, VIP_KEYS):
        return None

    prefix = parse_prefix(errors, f"{where}.prefix", raw.get("prefix"))

    backend = raw.get("backend")
    if backend is not None and (not isinstance(backend, str) or not _BACKEND_NAME.fullmatch(backend)):
        errors.append(f"{where}.backend: {backend!r} is not an HAProxy backend name")

    min_up = parse_number(errors, f"{where}.min_up", raw.get("min_up", 1), int, *MIN_UP_RANGE)
    if "min_up" in raw and backend is None:
        errors.append(f"{where}.min_up: {raw['min_up']!r} is set but the VIP has no backend to count")

    med = None
    if "med" in raw:
        med = parse_number(errors, f"{where}.med", raw["med"], int, *MED_RANGE)

    communities_raw = raw.get("communities", [])
    communities: list[str] = []
    if not isinstance(communities_raw, list | tuple):
        errors.append(f"{where}.communities: {communities_raw!r} is not a list")
    else:
        for index, value in enumerate(communities_raw):
            if not isinstance(value, str) or not _valid_community(value):
                errors.append(f"{where}.communities[{index}]: {value!r} is not a community (ASN:VALUE, each 0..65535)")
            else:
                communities.append(value)

    if len(errors) > start or prefix is None:
        return None
    return VipConfig(
        prefix=prefix,
        backend=backend,
        min_up=min_up if min_up is not None else 1,
        med=med,
        communities=tuple(communities),
    )


def check_vips(
    errors: list[str], where: str, vips: list[tuple[int, VipConfig]], families: set[int] | None, peers: str
) -> None:
    """Rules between VIPs (`where` = "vip"): each listed once; with peers given, each of a family with a
    peer (an IPv6 VIP needs an IPv6 BGP session)."""
    seen: set[str] = set()
    for index, vip in vips:
        if vip.prefix in seen:
            errors.append(f"{where}[{index}].prefix: {vip.prefix!r} is listed twice")
        seen.add(vip.prefix)
    if families is None:
        return
    for index, vip in vips:
        if vip.version not in families:
            errors.append(
                f"{where}[{index}].prefix: {vip.prefix!r} is IPv{vip.version} but no {peers} is:"
                f" an IPv{vip.version} VIP needs an IPv{vip.version} BGP session"
            )


def parse_listen(value: str) -> tuple[str, int] | None:
    """`host:port` of the status endpoint, or None when it is not a loopback address with a port 1..65535.

    Loopback only: the endpoint answers anyone who can connect, and it is meant for this node's operator.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # an IPv6 address needs its brackets: "::1:8405" is itself an address
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return (str(address), int(port)) if address.is_loopback else None


def parse_address(errors: list[str], key: str, value: Any, version: int | None = None) -> str | None:
    """An IP address (not a prefix, not a name, not an integer), normalised; of IP `version` if given."""
    if value is None:
        errors.append(f"{key}: {NOT_SET}")
        return None
    if not isinstance(value, str):  # ipaddress takes integers: 65001 would be 0.0.253.233
        errors.append(f"{key}: {value!r} is not a string")
        return None
    try:
        if "%" in value:
            raise ValueError("scoped address")
        address = ipaddress.ip_address(value)
    except ValueError:
        errors.append(f"{key}: {value!r} is not an IP{'' if version is None else f'v{version}'} address")
        return None
    if version is not None and address.version != version:
        errors.append(f"{key}: {value!r} is not an IPv{version} address")
        return None
    return str(address)


def parse_router_id(errors: list[str], key: str, value: Any) -> str | None:
    start = len(errors)
    router_id = parse_address(errors, key, value)
    if router_id is not None and ipaddress.ip_address(router_id).version != 4:
        errors.append(f"{key}: {value!r} is not an IPv4 address (a BGP identifier is 32 bits)")
    return router_id if len(errors) == start else None


def _parse_bgp(raw: Any, errors: list[str]) -> BgpConfig | None:
    if raw is None:
        return None
    start = len(errors)
    if not _is_table(errors, "bgp", raw, ("local_asn", "router_id", "hold_time")):
        return None
    local_asn = parse_asn(errors, "bgp.local_asn", raw.get("local_asn"))
    router_id = parse_router_id(errors, "bgp.router_id", raw.get("router_id"))
    hold_time = parse_hold_time(errors, "bgp.hold_time", raw.get("hold_time", DEFAULT_HOLD_TIME))
    if len(errors) > start or local_asn is None or router_id is None or hold_time is None:
        return None
    return BgpConfig(local_asn=local_asn, router_id=router_id, hold_time=hold_time)


def _parse_peer(index: int, raw: Any, errors: list[str]) -> PeerConfig | None:
    where = f"peer[{index}]"
    start = len(errors)
    if not _is_table(errors, where, raw, ("address", "asn", "local_address")):
        return None
    address = parse_address(errors, f"{where}.address", raw.get("address"))
    asn = parse_asn(errors, f"{where}.asn", raw.get("asn"))
    local = None
    if "local_address" in raw:
        local = parse_address(errors, f"{where}.local_address", raw["local_address"])
        if (
            local is not None
            and address is not None
            and ipaddress.ip_address(local).version != ipaddress.ip_address(address).version
        ):
            errors.append(
                f"{where}.local_address: {raw['local_address']!r} is not of the family of address {address!r}"
            )
    if len(errors) > start or address is None or asn is None:
        return None
    return PeerConfig(address=address, asn=asn, local_address=local)


def _valid_community(value: str) -> bool:
    match = _COMMUNITY.fullmatch(value)
    return bool(match) and all(int(part) <= 65535 for part in match.groups())  # type: ignore[union-attr]


def parse_config(raw: dict[str, Any]) -> Config:
    """Turn a parsed TOML document into a `Config`, or raise `ConfigError` listing every problem."""
    errors: list[str] = []
    for key in raw.keys() - {"health", "vip", "bgp", "peer"}:
        errors.append(f"{key}: unknown section (value {raw[key]!r})")
    health = parse_health(errors, "health", raw.get("health"))
    bgp = _parse_bgp(raw.get("bgp"), errors)
    peers = _parse_peers(raw.get("peer", []), "bgp" in raw, errors)
    vips_raw = raw.get("vip", [])
    vips: list[tuple[int, VipConfig]] = []  # with the index in the file, for error messages
    if not isinstance(vips_raw, list):
        errors.append(f"vip: {vips_raw!r} is not an array of tables ([[vip]])")
    else:
        if not vips_raw:
            errors.append("vip: no [[vip]] table: there is nothing to announce")
        for index, item in enumerate(vips_raw):
            vip = parse_vip(errors, f"vip[{index}]", item)
            if vip is not None:
                vips.append((index, vip))
    check_vips(errors, "vip", vips, {peer.version for peer in peers} if peers else None, "[[peer]]")
    if errors:
        raise ConfigError(errors)
    return Config(health=health, vips=tuple(vip for _, vip in vips), bgp=bgp, peers=tuple(peers))


def _parse_peers(raw: Any, have_bgp: bool, errors: list[str]) -> list[PeerConfig]:
    if not isinstance(raw, list):
        errors.append(f"peer: {raw!r} is not an array of tables ([[peer]])")
        return []
    if raw and not have_bgp:
        errors.append("peer: [[peer]] given without a [bgp] table (local_asn, router_id, hold_time)")
    peers: list[PeerConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        peer = _parse_peer(index, item, errors)
        if peer is None:
            continue
        if peer.address in seen:
            errors.append(f"peer[{index}].address: {peer.address!r} is listed twice")
        seen.add(peer.address)
        peers.append(peer)
    return peers


def _toml(value: Any) -> str:
    """One TOML value: strings as basic strings (JSON's escapes are TOML's), numbers and lists as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def dump_config(config: Config) -> str:
    """health.toml for `config`: every field written (no default left to the reader), read back by
    `parse_config` to the same `Config`."""
    lines = ["[health]"]
    lines += [f"{f.name} = {_toml(getattr(config.health, f.name))}" for f in dataclasses.fields(config.health)]
    if config.bgp is not None:
        lines += [
            "",
            "# the BGP sessions exabgp.conf opens: ober-health, `ober status` and `ober doctor` report on each",
        ]
        lines += ["[bgp]"] + [
            f"{f.name} = {_toml(getattr(config.bgp, f.name))}" for f in dataclasses.fields(config.bgp)
        ]
    for peer in config.peers:
        lines += ["", "[[peer]]", f"address = {_toml(peer.address)}", f"asn = {peer.asn}"]
        if peer.local_address is not None:
            lines.append(f"local_address = {_toml(peer.local_address)}")
    for vip in config.vips:
        lines += ["", "[[vip]]", f"prefix = {_toml(vip.prefix)}"]
        if vip.backend is not None:
            lines += [f"backend = {_toml(vip.backend)}", f"min_up = {vip.min_up}"]
        if vip.med is not None:
            lines.append(f"med = {vip.med}")
        if vip.communities:
            lines.append(f"communities = {_toml(vip.communities)}")
    return "\n".join(lines) + "\n"


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.end]!r})"]) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from exc
    return parse_config(raw)
