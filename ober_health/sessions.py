"""The node's BGP sessions as ExaBGP sees them: state, since when, and why not established, in words.

Two sources, because either alone lies sometimes:
- ExaBGP's events (`neighbor X connected|up|down`, the NOTIFICATION a peer sent) say *why*, at once;
- `show neighbor json` (asked at start and periodically) says *what is*: a respawned health program gets no
  `up` for a session that was already up, and a session refused from its first OPEN never sends `up`.

The configured peers ([[peer]] in health.toml) are always listed, even those ExaBGP never reported on.
Pure logic with no clock of its own: every method takes `now`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ober_health.config import PeerConfig
from ober_health.exabgp import Event, EventKind, PeerSnapshot

log = logging.getLogger("ober-health")

ESTABLISHED, DOWN, UNKNOWN = "established", "down", "unknown"
REPEAT_LOG_EVERY = 60.0  # a session that keeps failing the same way is logged again once a minute


@dataclass
class Session:
    address: str
    asn: int | None = None  # None: not in health.toml, ExaBGP reported on it anyway
    configured: bool = False
    state: str = UNKNOWN
    since: float | None = None  # when it became established, or stopped being so
    went_down: str = ""  # why it stopped being established (the first failure), in words
    notification: str = ""  # the latest NOTIFICATION since then (sent or received), in words
    last: str = ""  # the latest failure, in words
    failures: int = 0  # failures since it was last established, the first included
    hold_time: int | None = None  # negotiated, from the last `show neighbor json`
    _notification: tuple[tuple[int, int], str] | None = None  # the peer's last NOTIFICATION (code, words)
    _logged: tuple[str, float] = ("", 0.0)

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def reason(self) -> str:
        """Why it is not established ("" when it is), as one line for `ober status` and the journal."""
        if self.state == ESTABLISHED:
            return ""
        # what stops it now: the latest NOTIFICATION says more than the TCP closes that may follow it
        primary = self.notification or self.last or "no session yet"
        parts = [primary]
        if self.failures > 1:
            again = f"{self.failures - 1} more attempt(s) failed since it went down"
            parts.append(again + (f", the last: {self.last}" if self.last and self.last != primary else ""))
        if self.went_down and self.went_down != primary:
            parts.append(f"it went down with: {self.went_down}")
        return "; ".join(parts)


@dataclass
class SessionBook:
    """Every session this node has (configured or reported), updated from ExaBGP's events and tables."""

    sessions: dict[str, Session] = field(default_factory=dict)

    @classmethod
    def from_peers(cls, peers: Iterable[PeerConfig]) -> SessionBook:
        book = cls()
        for peer in peers:
            book.sessions[peer.address] = Session(peer.address, asn=peer.asn, configured=True)
        return book

    def get(self, address: str) -> Session:
        try:
            key = str(ipaddress.ip_address(address))
        except ValueError:
            key = address
        if key not in self.sessions:
            self.sessions[key] = Session(key)
        return self.sessions[key]

    def established(self, version: int) -> list[Session]:
        """Established sessions of one address family (what can carry a VIP of that family)."""
        return [s for s in self.sessions.values() if s.state == ESTABLISHED and s.version == version]

    def negotiated_hold_time(self) -> int | None:
        """The smallest hold time of the established sessions: past it, the peers have dropped us anyway."""
        holds = [s.hold_time for s in self.sessions.values() if s.state == ESTABLISHED and s.hold_time]
        return min(holds) if holds else None

    # ---- ExaBGP's events
    def on_event(self, event: Event, now: float) -> None:
        if not event.neighbor:
            return
        session = self.get(event.neighbor)
        if event.kind is EventKind.NEIGHBOR_UP:
            self._up(session, now, "")
        elif event.kind is EventKind.NOTIFICATION and event.code is not None:
            if event.direction == "receive":
                session._notification = (event.code, event.reason)
        elif event.kind is EventKind.NEIGHBOR_DOWN:
            reason = event.reason
            if event.direction == "receive" and session._notification and session._notification[0] == event.code:
                reason = session._notification[1]  # the same NOTIFICATION, with its data (a shutdown message)
            session._notification = None
            self._down(session, now, reason)

    def _up(self, session: Session, now: float, how: str) -> None:
        if session.state != ESTABLISHED:
            session.state, session.since = ESTABLISHED, now
            session.went_down, session.notification, session.last, session.failures = "", "", "", 0
            log.info("BGP session with %s%s established%s", session.address, _asn(session), how)
            session._logged = ("", 0.0)

    def _down(self, session: Session, now: float, reason: str) -> None:
        if session.state == ESTABLISHED:
            session.since = now
            session.went_down, session.notification, session.failures = reason, "", 0
            log.warning("BGP session with %s%s down: %s", session.address, _asn(session), reason)
        elif session.since is None:
            session.since = now
        if not session.went_down:
            session.went_down = reason
        if "NOTIFICATION" in reason:
            session.notification = reason
        session.state = DOWN
        session.last = reason
        session.failures += 1
        said, when = session._logged
        primary = session.notification or reason
        if primary != said or now - when >= REPEAT_LOG_EVERY:
            log.warning("BGP session with %s%s not established: %s", session.address, _asn(session), session.reason)
            session._logged = (primary, now)

    # ---- `show neighbor json`
    def on_table(self, peers: tuple[PeerSnapshot, ...], now: float) -> None:
        """What ExaBGP says is, whatever events were missed (a respawn, a session never opened)."""
        for snapshot in peers:
            session = self.get(snapshot.address)
            session.hold_time = snapshot.hold_time
            if snapshot.established:
                self._up(session, now - snapshot.duration, " (per ExaBGP's session table)")
                continue
            if session.state == ESTABLISHED:
                self._down(session, now, f"ExaBGP reports the session in state {snapshot.fsm}")
            elif session.state == UNKNOWN:
                session.state = DOWN
                session.last = session.last or f"not established (ExaBGP: {snapshot.fsm})"


def _asn(session: Session) -> str:
    return f" (AS{session.asn})" if session.asn is not None else ""
