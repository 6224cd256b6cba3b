"""The commands sent to ExaBGP and the answers still owed: which answer belongs to which command, and whether
ExaBGP still answers at all.

ExaBGP runs `announce`, `withdraw`, `show adj-rib out` and `show neighbor json` through one FIFO queue and
answers each with `done` (or `error`) once it ran, after the command's own reply lines. So answers come in the
order commands were sent, and the oldest unanswered command says how long ExaBGP has been silent. Pure logic:
the caller gives the (monotonic) time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from ober_health.exabgp import Event, EventKind


class Kind(Enum):
    ANNOUNCE = "announce"
    WITHDRAW = "withdraw"
    SHOW_RIB = "show adj-rib out"
    SHOW_NEIGHBORS = "show neighbor json"


@dataclass
class Command:
    kind: Kind
    line: str
    sent_at: float  # monotonic
    seq: int
    prefix: str = ""  # ANNOUNCE/WITHDRAW: the route
    replies: list[Event] = field(default_factory=list)  # the reply lines before `done`


@dataclass(frozen=True)
class Answer:
    """A command and how ExaBGP answered it (`ok` False: `error`)."""

    command: Command
    ok: bool


@dataclass
class Conversation:
    pending: deque[Command] = field(default_factory=deque)
    seq: int = 0
    unexpected: int = 0  # answers with no command waiting for them (logged by the caller)

    def sent(self, kind: Kind, line: str, now: float, prefix: str = "") -> Command:
        self.seq += 1
        command = Command(kind, line, now, self.seq, prefix)
        self.pending.append(command)
        return command

    def outstanding(self, kind: Kind) -> bool:
        return any(command.kind is kind for command in self.pending)

    def oldest_age(self, now: float) -> float | None:
        """Seconds the oldest unanswered command has waited; None when ExaBGP owes nothing."""
        return now - self.pending[0].sent_at if self.pending else None

    def reply_line(self, event: Event) -> bool:
        """A data line (adj-rib-out route, neighbor table): kept for the `show` it answers. False if none waits."""
        wanted = Kind.SHOW_RIB if event.kind is EventKind.RIB_ROUTE else Kind.SHOW_NEIGHBORS
        if self.pending and self.pending[0].kind is wanted:
            self.pending[0].replies.append(event)
            return True
        return False

    def answer(self, ok: bool) -> Answer | None:
        """`done`/`error`: the oldest command is answered. None when no command was waiting."""
        if not self.pending:
            self.unexpected += 1
            return None
        return Answer(self.pending.popleft(), ok)
