"""ExaBGP's text API, both directions.

Out (our stdout): one `announce route ...` / `withdraw route ...` line per change, flushed at once.
In (our stdin): with the default `exabgp.api.ack = true` ExaBGP answers every command with `done` or
`error`; with `neighbor-changes` (or always, depending on version) it also sends `neighbor X up`,
`neighbor X down - reason`, `neighbor X connected`, and `shutdown PID PPID` before it terminates us.
Blank lines and anything unknown are ignored: nothing ExaBGP writes may crash the health program.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

from ober_health.config import VipConfig


def announce_line(vip: VipConfig) -> str:
    """`announce route P next-hop self [med M] [community [A:B ...]]`."""
    parts = [f"announce route {vip.prefix} next-hop self"]
    if vip.med is not None:
        parts.append(f"med {vip.med}")
    if vip.communities:
        parts.append(f"community [{' '.join(vip.communities)}]")
    return " ".join(parts)


def withdraw_line(vip: VipConfig) -> str:
    return f"withdraw route {vip.prefix} next-hop self"


class EventKind(Enum):
    DONE = "done"
    ERROR = "error"
    NEIGHBOR_UP = "neighbor-up"
    NEIGHBOR_DOWN = "neighbor-down"
    SHUTDOWN = "shutdown"
    OTHER = "other"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    text: str = ""
    neighbor: str = ""


def parse_line(line: str) -> Event | None:
    """Classify one line from ExaBGP; None for a blank line. Never raises."""
    text = line.strip()
    if not text:
        return None
    if text == "done":
        return Event(EventKind.DONE)
    if text == "error" or text.startswith("error "):
        return Event(EventKind.ERROR, text)
    if text == "shutdown" or text.startswith("shutdown "):
        return Event(EventKind.SHUTDOWN, text)
    words = text.split()
    if words[0] == "neighbor" and len(words) >= 3:
        if words[2] == "up":
            return Event(EventKind.NEIGHBOR_UP, text, words[1])
        if words[2] == "down":
            return Event(EventKind.NEIGHBOR_DOWN, text, words[1])
    if text.startswith("{"):
        return _parse_json(text)
    return Event(EventKind.OTHER, text)


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
            return Event(EventKind.NEIGHBOR_DOWN, text, peer)
    if kind == "notification" and message.get("notification") == "shutdown":
        return Event(EventKind.SHUTDOWN, text)
    return Event(EventKind.OTHER, text)
