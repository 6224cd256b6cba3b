"""How long `ober drain --wait` waits for client sessions after the withdraw, and what it lets go.

Once ExaBGP acknowledged the withdraw and the router had a moment to converge (`settle`), no new client
comes; the sessions left are of two kinds. Live ones still move bytes (a download whose client still
reaches this node) or end (their count falls): they are waited for. Orphans do neither: the router now
sends their client's packets to another node, which resets them, and this node never hears of it, so
HAProxy keeps them until its own timeouts (minutes for `timeout client`). Waiting for those only holds a
stop, a reboot or a rolling deploy for nothing. So the wait ends when no session is left, when the sessions
made no progress for `stall` seconds (let go, reported), or at the deadline (let go, reported); it is the
withdraw that decides whether the drain succeeded, not the sessions.

Progress is read from HAProxy itself: the client sessions of `show stat` (`scur` of the client frontends)
changing, or the process's bytes sent (`TotalBytesOut` of `show info`, updated as data moves; the
frontends' `bout` is only counted when a session ends) growing by at least `PROGRESS_BYTES` since the last
progress. Health checks send bytes too, a few KiB per stall window on a usual node: the threshold keeps
them from counting as progress (a node whose checks send more than that waits to its bound, as before).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SETTLE_SECONDS = 1.0  # after ExaBGP's ack: the router withdraws the next hop from its FIB (lab: 1.5 ms)
STALL_SECONDS = 2.0  # no session ended and no byte moved for this long: the sessions left are orphans
PROGRESS_BYTES = 65536  # bytes HAProxy must send since the last progress to count as progress again


@dataclass(frozen=True)
class Sample:
    """HAProxy's client frontends at one moment."""

    sessions: int
    bytes: int  # TotalBytesOut of `show info`: every byte HAProxy sent, cumulative


@dataclass(frozen=True)
class SessionWait:
    """How the wait ended: `left` sessions still open after `seconds`, `why` in words."""

    left: int | None  # None: HAProxy was not there to ask
    seconds: float
    stalled: bool  # let go because nothing moved for `stall` seconds
    timed_out: bool  # let go at the deadline while something still moved

    def line(self, stall: float) -> str:
        if self.left is None:
            return "HAProxy's stats socket does not answer: no client session to wait for"
        if not self.left:
            return f"no client session left ({self.seconds:.1f}s)"
        if self.stalled:
            return (
                f"{self.left} client session(s) still open after {self.seconds:.1f}s, no progress for {stall:g}s"
                " (their clients now reach another node): let go"
            )
        left = f"{self.left} client session(s) still open after {self.seconds:.1f}s"
        return f"{left}, still moving at the deadline: let go"


def wait_sessions(
    sample: Callable[[], Sample | None],
    deadline: float,
    stall: float = STALL_SECONDS,
    interval: float = 0.2,
    min_bytes: int = PROGRESS_BYTES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SessionWait:
    """Wait (until `deadline` on `clock`) for client sessions to end while they make progress."""
    started = clock()
    last = sample()
    progress_at = started
    mark = last.bytes if last is not None else 0  # bytes sent at the last progress
    while True:
        now = clock()
        if last is None or last.sessions == 0:
            return SessionWait(None if last is None else 0, now - started, stalled=False, timed_out=False)
        if now - progress_at >= stall:
            return SessionWait(last.sessions, now - started, stalled=True, timed_out=False)
        if now >= deadline:
            return SessionWait(last.sessions, now - started, stalled=False, timed_out=True)
        sleep(max(0.0, min(interval, deadline - now)))
        current = sample()
        # a session ended or came (a client still arrives: the router has not converged), or bytes moved
        if current is None or current.sessions != last.sessions or current.bytes - mark >= min_bytes:
            progress_at = clock()
            mark = current.bytes if current is not None else 0
        last = current


def total_bytes_out(info: str) -> int:
    """`TotalBytesOut` of HAProxy's `show info` (0 when absent: HAProxy before 2.3 has no such line)."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "TotalBytesOut":
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0
