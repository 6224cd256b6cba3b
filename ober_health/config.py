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


@dataclass(frozen=True)
class Config:
    health: HealthConfig = field(default_factory=HealthConfig)
    vips: tuple[VipConfig, ...] = ()


_HEALTH_NUMBERS: dict[str, tuple[type, float, float]] = {
    # key: (type, minimum, maximum)
    "interval": (float, 0.01, 60.0),
    "timeout": (float, 0.01, 60.0),
    "rise": (int, 1, 1000),
    "fall": (int, 1, 1000),
    "shutdown_ack_timeout": (float, 0.0, 1.5),  # ExaBGP SIGKILLs us 2 s after SIGTERM
}
_HEALTH_STRINGS = ("haproxy_url", "stats_socket", "maintenance_file", "drain_file", "state_file")


def _number(errors: list[str], key: str, value: Any, kind: type, low: float, high: float) -> Any:
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
        else:
            errors.append(f"{name}: unknown key (value {value!r})")
    url = values.get("haproxy_url")
    if url is not None and not _HTTP_URL.fullmatch(url):
        errors.append(f"health.haproxy_url: {url!r} is not an http(s) URL")
    config = HealthConfig(**values)
    if config.timeout > max(config.interval, 0) * 10:
        errors.append(
            f"health.timeout: {config.timeout!r} is more than 10x health.interval ({config.interval!r}):"
            " a hung HAProxy would be noticed too late"
        )
    return config


def _parse_vip(index: int, raw: Any, errors: list[str]) -> VipConfig | None:
    where = f"vip[{index}]"
    if not isinstance(raw, dict):
        errors.append(f"{where}: {raw!r} is not a table")
        return None
    start = len(errors)
    known = {"prefix", "backend", "min_up", "med", "communities"}
    for key in raw.keys() - known:
        errors.append(f"{where}.{key}: unknown key (value {raw[key]!r})")

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


def _valid_community(value: str) -> bool:
    match = _COMMUNITY.fullmatch(value)
    return bool(match) and all(int(part) <= 65535 for part in match.groups())  # type: ignore[union-attr]


def parse_config(raw: dict[str, Any]) -> Config:
    """Turn a parsed TOML document into a `Config`, or raise `ConfigError` listing every problem."""
    errors: list[str] = []
    for key in raw.keys() - {"health", "vip"}:
        errors.append(f"{key}: unknown section (value {raw[key]!r})")
    health = _parse_health(raw.get("health"), errors)
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
    if errors:
        raise ConfigError(errors)
    return Config(health=health, vips=tuple(vip for _, vip in vips))


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
