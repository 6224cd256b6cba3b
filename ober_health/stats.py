"""HAProxy's own account of its backends and client sessions (`show stat` on its stats socket), for `ober
status` and `ober doctor`: what HAProxy sees now, not what the health program decided a moment ago.

A server counts as UP as the health program counts it (ober_health.checks.up_servers): `UP`, `UP 1/2`
and `no check` take traffic; `DOWN`, `MAINT`, `DRAIN`, `NOLB` do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ober_health.checks import read_stats, up_servers
from ober_health.config import Config

LOCAL_FRONTENDS = ("stats", "fe_stats", "health", "metrics")  # stats page, /health, Prometheus: not client traffic


@dataclass(frozen=True)
class ServerState:
    name: str
    status: str  # HAProxy's words: UP, DOWN, MAINT, "UP 1/2", "no check"
    check: str  # the last health check: `L4CON Connection refused`, `L7STS 503` ("" when none)
    address: str = ""  # host:port HAProxy checks (`addr`)


@dataclass(frozen=True)
class BackendState:
    name: str
    up: int
    total: int
    sessions: int  # current sessions to its servers (scur of the BACKEND row)
    servers: tuple[ServerState, ...]

    @property
    def down(self) -> tuple[ServerState, ...]:
        return tuple(s for s in self.servers if not (s.status.startswith("UP") or s.status == "no check"))


@dataclass
class HaproxyView:
    """HAProxy's stats now; `error` says why there are none (socket missing, refused, hung HAProxy)."""

    error: str = ""
    backends: dict[str, BackendState] = field(default_factory=dict)
    client_sessions: dict[str, int] = field(default_factory=dict)  # frontend -> scur (client connections)

    @property
    def total_sessions(self) -> int:
        return sum(self.client_sessions.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "client_sessions": self.total_sessions if not self.error else None,
            "frontends": dict(self.client_sessions),
            "backends": {
                name: {
                    "up": b.up,
                    "total": b.total,
                    "sessions": b.sessions,
                    "down": {s.name: f"{s.status}: {s.check}".rstrip(": ") for s in b.down},
                }
                for name, b in sorted(self.backends.items())
            },
        }


def summarize(rows: list[dict[str, str]]) -> HaproxyView:
    """Backends with their servers, and client sessions per frontend, from `show stat` rows."""
    view = HaproxyView()
    servers: dict[str, list[ServerState]] = {}
    sessions: dict[str, int] = {}
    for row in rows:
        proxy, name = row.get("pxname", ""), row.get("svname", "")
        if name == "FRONTEND":
            if proxy not in LOCAL_FRONTENDS:
                view.client_sessions[proxy] = _int(row.get("scur"))
        elif name == "BACKEND":
            sessions[proxy] = _int(row.get("scur"))
            servers.setdefault(proxy, [])
        else:
            check = " ".join(part for part in (row.get("check_status", ""), row.get("last_chk", "")) if part)
            server = ServerState(name, row.get("status", ""), check.strip(), row.get("addr", ""))
            servers.setdefault(proxy, []).append(server)
    for proxy, members in servers.items():
        if proxy in LOCAL_FRONTENDS and not members:
            continue
        up = up_servers(rows, proxy) or 0
        view.backends[proxy] = BackendState(proxy, up, len(members), sessions.get(proxy, 0), tuple(members))
    return view


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def read_view(config: Config) -> HaproxyView:
    """`show stat` from the stats socket health.toml names, summarized; the error when it cannot be read."""
    rows, error = read_stats(config.health.stats_socket, max(config.health.timeout, 1.0))
    if rows is None:
        return HaproxyView(error=error)
    return summarize(rows)
