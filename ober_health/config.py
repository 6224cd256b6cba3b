"""Load and validate `/etc/ober/health.toml`.

The health program decides routes, so a config it misreads is an outage. Every value is checked here,
once, and every error names the key and the value it got, e.g. ``vip[1].prefix: '203.0.113.300/32' is
not an IP prefix``. All errors are collected, not just the first, so an operator fixes them in one go.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/ober/health.toml")
DEFAULT_STATUS_LISTEN = "127.0.0.1:8405"
DEFAULT_HOLD_TIME = 9
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

    prefix: str
    backend: str | None = None
    min_up: int = 1
    med: int | None = None
    communities: tuple[str, ...] = ()

    @property
    def is_ipv6(self) -> bool:
        return ipaddress.ip_network(self.prefix).version == 6


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
    """Timers and paths of the health loop; defaults are what the deploy ships."""

    interval: float = 0.2
    timeout: float = 0.5
    rise: int = 3
    fall: int = 2
    haproxy_url: str = "http://127.0.0.1:8404/health"
    stats_socket: str = "/run/haproxy/admin.sock"
    maintenance_file: str = "/etc/ober/maintenance"
    drain_file: str = "/run/ober/drain"
    state_file: str = "/run/ober/state.json"
    shutdown_ack_timeout: float = 1.0
    # the state as JSON over HTTP on loopback (`ober status` reads it when the state file cannot be written)
    status_listen: str = DEFAULT_STATUS_LISTEN


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


_HEALTH_NUMBERS: dict[str, tuple[type, float, float]] = {
    # key: (type, minimum, maximum)
    "interval": (float, 0.01, 60.0),
    "timeout": (float, 0.01, 60.0),
    "rise": (int, 1, 1000),
    "fall": (int, 1, 1000),
    "shutdown_ack_timeout": (float, 0.0, 1.5),  # ExaBGP SIGKILLs us 2 s after SIGTERM
}
_HEALTH_STRINGS = ("haproxy_url", "stats_socket", "maintenance_file", "drain_file", "state_file")
_HEALTH_MAY_BE_EMPTY = ("status_listen",)  # "" switches the status endpoint off


def _number(errors: list[str], key: str, value: Any, kind: type, low: float, high: float) -> Any:
    if value is None:
        errors.append(f"{key}: missing")
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


def _parse_health(raw: Any, errors: list[str]) -> HealthConfig:
    if raw is None:
        return HealthConfig()
    if not isinstance(raw, dict):
        errors.append(f"health: {raw!r} is not a table")
        return HealthConfig()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"health.{key}"
        if key in _HEALTH_NUMBERS:
            kind, low, high = _HEALTH_NUMBERS[key]
            parsed = _number(errors, name, value, kind, low, high)
            if parsed is not None:
                values[key] = parsed
        elif key in _HEALTH_STRINGS:
            if not isinstance(value, str) or not value:
                errors.append(f"{name}: {value!r} is not a non-empty string")
            else:
                values[key] = value
        elif key in _HEALTH_MAY_BE_EMPTY:
            if not isinstance(value, str):
                errors.append(f"{name}: {value!r} is not a string")
            else:
                values[key] = value
        else:
            errors.append(f"{name}: unknown key (value {value!r})")
    url = values.get("haproxy_url")
    if url is not None and not _HTTP_URL.fullmatch(url):
        errors.append(f"health.haproxy_url: {url!r} is not an http(s) URL")
    listen = values.get("status_listen")
    if listen and parse_listen(listen) is None:
        errors.append(
            f"health.status_listen: {listen!r} is not a loopback address and port"
            ' (e.g. "127.0.0.1:8405" or "[::1]:8405"; "" for none)'
        )
    config = HealthConfig(**values)
    if config.timeout > max(config.interval, 0) * 10:
        errors.append(
            f"health.timeout: {config.timeout!r} is more than 10x health.interval ({config.interval!r}):"
            " a hung HAProxy would be noticed too late"
        )
    return config


def _is_table(errors: list[str], where: str, raw: Any, known: set[str]) -> bool:
    """`raw` is a TOML table with only `known` keys; each problem is appended to `errors`, named by `where`.
    False only when it is not a table at all (unknown keys are reported, the known ones still parsed)."""
    if not isinstance(raw, dict):
        errors.append(f"{where}: {raw!r} is not a table")
        return False
    for key in raw.keys() - known:
        errors.append(f"{where}.{key}: unknown key (value {raw[key]!r})")
    return True


def _parse_vip(index: int, raw: Any, errors: list[str]) -> VipConfig | None:
    where = f"vip[{index}]"
    start = len(errors)
    if not _is_table(errors, where, raw, {"prefix", "backend", "min_up", "med", "communities"}):
        return None

    prefix_raw = raw.get("prefix")
    prefix = ""
    if not isinstance(prefix_raw, str):
        errors.append(f"{where}.prefix: {prefix_raw!r} is missing or not a string")
    else:
        try:
            if "/" not in prefix_raw:
                raise ValueError("no prefix length")
            if "%" in prefix_raw:
                raise ValueError("scoped IPv6 address: not a route ExaBGP can announce")
            prefix = str(ipaddress.ip_network(prefix_raw, strict=True))
        except ValueError:
            errors.append(f"{where}.prefix: {prefix_raw!r} is not an IP prefix (e.g. 203.0.113.10/32)")

    backend = raw.get("backend")
    if backend is not None and (not isinstance(backend, str) or not _BACKEND_NAME.fullmatch(backend)):
        errors.append(f"{where}.backend: {backend!r} is not an HAProxy backend name")

    min_up = _number(errors, f"{where}.min_up", raw.get("min_up", 1), int, 1, 100000)
    if "min_up" in raw and backend is None:
        errors.append(f"{where}.min_up: {raw['min_up']!r} is set but the VIP has no backend to count")

    med = None
    if "med" in raw:
        med = _number(errors, f"{where}.med", raw["med"], int, 0, 4294967295)

    communities_raw = raw.get("communities", [])
    communities: list[str] = []
    if not isinstance(communities_raw, list):
        errors.append(f"{where}.communities: {communities_raw!r} is not a list")
    else:
        for value in communities_raw:
            if not isinstance(value, str) or not _valid_community(value):
                errors.append(f"{where}.communities: {value!r} is not a community (ASN:VALUE, each 0..65535)")
            else:
                communities.append(value)

    if len(errors) > start:
        return None
    return VipConfig(
        prefix=prefix,
        backend=backend,
        min_up=min_up if min_up is not None else 1,
        med=med,
        communities=tuple(communities),
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


def _address(errors: list[str], key: str, value: Any) -> str | None:
    """An IP address (not a prefix, not a name), normalised."""
    if not isinstance(value, str):
        errors.append(f"{key}: {value!r} is missing or not a string")
        return None
    try:
        if "%" in value:
            raise ValueError("scoped address")
        return str(ipaddress.ip_address(value))
    except ValueError:
        errors.append(f"{key}: {value!r} is not an IP address")
        return None


def _parse_bgp(raw: Any, errors: list[str]) -> BgpConfig | None:
    if raw is None:
        return None
    start = len(errors)
    if not _is_table(errors, "bgp", raw, {"local_asn", "router_id", "hold_time"}):
        return None
    local_asn = _number(errors, "bgp.local_asn", raw.get("local_asn"), int, *ASN_RANGE)
    router_id = _address(errors, "bgp.router_id", raw.get("router_id"))
    if router_id is not None and ipaddress.ip_address(router_id).version != 4:
        errors.append(f"bgp.router_id: {raw['router_id']!r} is not an IPv4 address (a BGP identifier is 32 bits)")
    hold_time = _number(errors, "bgp.hold_time", raw.get("hold_time", DEFAULT_HOLD_TIME), int, *HOLD_TIME_RANGE)
    if len(errors) > start or local_asn is None or router_id is None or hold_time is None:
        return None
    return BgpConfig(local_asn=local_asn, router_id=router_id, hold_time=hold_time)


def _parse_peer(index: int, raw: Any, errors: list[str]) -> PeerConfig | None:
    where = f"peer[{index}]"
    start = len(errors)
    if not _is_table(errors, where, raw, {"address", "asn", "local_address"}):
        return None
    address = _address(errors, f"{where}.address", raw.get("address"))
    asn = _number(errors, f"{where}.asn", raw.get("asn"), int, *ASN_RANGE)
    local = None
    if "local_address" in raw:
        local = _address(errors, f"{where}.local_address", raw["local_address"])
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
    health = _parse_health(raw.get("health"), errors)
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
            vip = _parse_vip(index, item, errors)
            if vip is not None:
                vips.append((index, vip))
    seen: set[str] = set()
    for index, vip in vips:
        if vip.prefix in seen:
            errors.append(f"vip[{index}].prefix: {vip.prefix!r} is listed twice")
        seen.add(vip.prefix)
    if peers:
        families = {peer.version for peer in peers}
        for index, vip in vips:
            version = ipaddress.ip_network(vip.prefix).version
            if version not in families:
                errors.append(
                    f"vip[{index}].prefix: {vip.prefix!r} is IPv{version} but no [[peer]] is:"
                    f" an IPv{version} VIP needs an IPv{version} BGP session"
                )
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
