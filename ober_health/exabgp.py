"""ExaBGP's text API, both directions. Pure functions: what we write, and what each line ExaBGP writes means.

Out (our stdout), one line per command:

    neighbor 198.51.100.1 , neighbor 198.51.100.2 announce route 203.0.113.10/32 next-hop self med 100
    neighbor 2001:db8::1 withdraw route 2001:db8:203::10/128 next-hop self
    show adj-rib out          what ExaBGP holds for us: `<peer> ipv4 unicast <prefix> next-hop <nh>` lines, `done`
    show neighbor json        every session: one JSON line (`fsm`, `duration`, hold times), `done`

A route command carries a selector naming the configured peers of its address family: without one ExaBGP
offers an IPv6 route to the IPv4 sessions too and logs "route family not configured on neighbor" for each.
(ExaBGP 5's syntax for several neighbors is `neighbor A , neighbor B <command>`, see its
reactor/api/command/limit.py.) With no [[peer]] configured the lines carry no selector.

In (our stdin): `done`/`error` answer every command in the order ExaBGP runs them (`announce`, `withdraw` and
the `show` commands all go through one FIFO queue in ExaBGP's reactor); with `neighbor-changes` ExaBGP also
sends `neighbor X connected|up|down - reason`, with `receive { parsed; notification; }` the NOTIFICATION a
peer sent (`neighbor X receive notification code C subcode S data 0x...`), and `shutdown PID PPID` before it
terminates us. Blank lines and anything unknown are ignored: nothing ExaBGP writes may crash the health
program.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from ober_health.config import PeerConfig, VipConfig

SHOW_RIB = "show adj-rib out"
SHOW_NEIGHBORS = "show neighbor json"


def selector(peers: Sequence[PeerConfig]) -> str:
    """`neighbor A , neighbor B ` (with the trailing space), or "" for no selector (every neighbor)."""
    if not peers:
        return ""
    return " , ".join(f"neighbor {peer.address}" for peer in peers) + " "


def announce_line(vip: VipConfig, peers: Sequence[PeerConfig] = ()) -> str:
    """`[selector ]announce route P next-hop self [med M] [community [A:B ...]]`."""
    parts = [f"{selector(peers)}announce route {vip.prefix} next-hop self"]
    if vip.med is not None:
        parts.append(f"med {vip.med}")
    if vip.communities:
        parts.append(f"community [{' '.join(vip.communities)}]")
    return " ".join(parts)


def withdraw_line(vip: VipConfig, peers: Sequence[PeerConfig] = ()) -> str:
    return withdraw_prefix_line(vip.prefix, [peer.address for peer in peers])


def withdraw_prefix_line(prefix: str, peer_addresses: Sequence[str] = ()) -> str:
    """Withdraw a prefix by name only (also one the config no longer has, found in ExaBGP's adj-rib-out)."""
    chosen = " , ".join(f"neighbor {address}" for address in peer_addresses)
    return f"{chosen + ' ' if chosen else ''}withdraw route {prefix} next-hop self"


class EventKind(Enum):
    DONE = "done"
    ERROR = "error"
    NEIGHBOR_CONNECTED = "neighbor-connected"
    NEIGHBOR_UP = "neighbor-up"
    NEIGHBOR_DOWN = "neighbor-down"
    NOTIFICATION = "notification"  # a NOTIFICATION received from (or sent to) a peer, in words
    RIB_ROUTE = "rib-route"  # one line of `show adj-rib out`
    NEIGHBOR_TABLE = "neighbor-table"  # the line of `show neighbor json`
    SHUTDOWN = "shutdown"
    OTHER = "other"


@dataclass(frozen=True)
class PeerSnapshot:
    """One session as `show neighbor json` reports it."""

    address: str
    fsm: str  # IDLE, ACTIVE, CONNECT, OPENSENT, OPENCONFIRM, ESTABLISHED
    duration: int  # seconds since established (0 when not, and in the session's first second)
    hold_time: int | None  # negotiated: min(ours, the peer's OPEN); None before an OPEN was received

    @property
    def established(self) -> bool:
        return self.fsm == "ESTABLISHED"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    text: str = ""
    neighbor: str = ""
    reason: str = ""  # NEIGHBOR_DOWN, NOTIFICATION: in words
    code: tuple[int, int] | None = None  # NEIGHBOR_DOWN, NOTIFICATION: (code, subcode) when there was one
    direction: str = ""  # NOTIFICATION / NEIGHBOR_DOWN: "receive" (the peer sent it) or "send" (ExaBGP did)
    prefix: str = ""  # RIB_ROUTE
    peers: tuple[PeerSnapshot, ...] = ()  # NEIGHBOR_TABLE


_DOWN_NOTIFICATION = re.compile(r"notification (received|sent) \((\d+),(\d+)\)", re.ASCII)
_RECEIVED = re.compile(
    r"neighbor (\S+) (receive|send) notification code (\d+) subcode (\d+) data (0x[0-9A-Fa-f]*)", re.ASCII
)


def parse_line(line: str) -> Event | None:
    """Classify one line from ExaBGP; None for a blank line. Never raises."""
    text = line.strip()
    if not text:
        return None
    try:
        return _classify(text)
    except Exception:  # a line no rule foresaw is noise, never a crash of the reader
        return Event(EventKind.OTHER, text)


def _classify(text: str) -> Event:
    if text == "done":
        return Event(EventKind.DONE)
    if text == "error" or text.startswith("error "):
        return Event(EventKind.ERROR, text)
    if text == "shutdown" or text.startswith("shutdown "):
        return Event(EventKind.SHUTDOWN, text)
    if text.startswith("["):
        return _parse_neighbor_table(text)
    if text.startswith("{"):
        return _parse_json(text)
    words = text.split()
    if words[0] == "neighbor" and len(words) >= 3:
        return _parse_neighbor(text, words)
    if len(words) >= 4 and words[1] in ("ipv4", "ipv6") and _is_address(words[0]):
        return _parse_rib_route(text, words)
    return Event(EventKind.OTHER, text)


def _parse_neighbor(text: str, words: list[str]) -> Event:
    neighbor = words[1]
    if words[2] == "up":
        return Event(EventKind.NEIGHBOR_UP, text, neighbor)
    if words[2] == "connected":
        return Event(EventKind.NEIGHBOR_CONNECTED, text, neighbor)
    if words[2] == "down":
        raw = text.split(" down", 1)[1].lstrip(" -")
        match = _DOWN_NOTIFICATION.search(raw)
        if match:
            code = (int(match[2]), int(match[3]))
            received = match[1] == "received"
            who = "peer sent" if received else "ExaBGP sent"
            reason = f"{who} NOTIFICATION: {notification_words(*code)}"
            return Event(EventKind.NEIGHBOR_DOWN, text, neighbor, reason, code, "receive" if received else "send")
        return Event(EventKind.NEIGHBOR_DOWN, text, neighbor, _down_words(raw))
    match = _RECEIVED.match(text)
    if match:
        code = (int(match[3]), int(match[4]))
        data = bytes.fromhex(match[5][2:]) if len(match[5]) % 2 == 0 else b""
        who = "peer sent" if match[2] == "receive" else "ExaBGP sent"
        reason = f"{who} NOTIFICATION: {notification_words(*code, data=data)}"
        return Event(EventKind.NOTIFICATION, text, match[1], reason, code, match[2])
    return Event(EventKind.OTHER, text, neighbor)


def _down_words(raw: str) -> str:
    """ExaBGP's own `down` reasons, said the way an operator reads them."""
    if raw == "closing connection":
        return "connection closed (TCP)"  # a network error: refused, reset or closed by the peer
    return raw or "no reason given"


def _parse_rib_route(text: str, words: list[str]) -> Event:
    try:
        prefix = str(ipaddress.ip_network(words[3], strict=False))
    except ValueError:
        return Event(EventKind.OTHER, text)
    return Event(EventKind.RIB_ROUTE, text, str(ipaddress.ip_address(words[0])), prefix=prefix)


def _parse_neighbor_table(text: str) -> Event:
    try:
        table = json.loads(text)
    except (ValueError, RecursionError):
        return Event(EventKind.OTHER, text)
    if not isinstance(table, list):
        return Event(EventKind.OTHER, text)
    peers = []
    for entry in table:
        if not isinstance(entry, dict):
            continue
        peer = entry.get("peer", {})
        local = entry.get("local", {})
        if not isinstance(peer, dict) or not isinstance(local, dict) or not _is_address(peer.get("address")):
            continue
        holds = [h for h in (local.get("hold"), peer.get("hold")) if isinstance(h, int) and not isinstance(h, bool)]
        # `duration` is the time since established when "state" is "up", else something else (ExaBGP's `down`)
        duration = entry.get("duration") if entry.get("state") == "up" else 0
        peers.append(
            PeerSnapshot(
                address=str(ipaddress.ip_address(peer["address"])),
                fsm=str(entry.get("fsm", "")),
                duration=duration if isinstance(duration, int) else 0,
                hold_time=min(holds) if len(holds) == 2 else None,
            )
        )
    return Event(EventKind.NEIGHBOR_TABLE, text, peers=tuple(peers))


def _is_address(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=256)
def notification_words(code: int, subcode: int, data: bytes = b"") -> str:
    """`OPEN message error / Bad Peer AS`, from ExaBGP's own Notification class (its code/subcode names).

    `data` is added when it is text (a Shutdown Communication, RFC 8203), never as hex noise. Imported on
    first use: ExaBGP's message package costs about 0.3 s to import, which the health program's start (a
    respawn that must reconcile quickly) does not pay; the stdin reader thread pays it, not the decider.
    """
    from exabgp.bgp.message.notification import Notification

    shown = data if data and all(32 <= byte < 127 for byte in data) else b""
    return str(Notification(code, subcode, shown, parse_data=False))


def _parse_json(text: str) -> Event:
    """The JSON encoder's state messages, in case a site configures `encoder json`."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the decoder's recursion limit
        return Event(EventKind.OTHER, text)
    if not isinstance(message, dict):
        return Event(EventKind.OTHER, text)
    kind = message.get("type")
    neighbor = message.get("neighbor")
    if kind == "state" and isinstance(neighbor, dict):
        address = neighbor.get("address", {})
        peer = str(address.get("peer", "")) if isinstance(address, dict) else ""
        state = neighbor.get("state")
        if state == "up":
            return Event(EventKind.NEIGHBOR_UP, text, peer)
        if state == "down":
            return Event(EventKind.NEIGHBOR_DOWN, text, peer, str(neighbor.get("reason", "")))
        if state == "connected":
            return Event(EventKind.NEIGHBOR_CONNECTED, text, peer)
    if kind == "notification" and message.get("notification") == "shutdown":
        return Event(EventKind.SHUTDOWN, text)
    return Event(EventKind.OTHER, text)
