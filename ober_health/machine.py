"""The per-VIP decision: announce after `rise` good checks, withdraw after `fall` bad ones.

Pure logic, no I/O and no clock of its own, so every transition is unit-testable. The machine only says
*when* the route must change; the caller turns that into an ExaBGP line. A VIP starts withdrawn (nothing is
announced before it has proven itself `rise` times) unless ExaBGP already announces it (`adopt`: a respawned
health program takes over what the last one left), and a drain withdraws at once: a planned drain must not
wait for `fall` bad checks. Neither does a *decisive* failure (HAProxy's master exited, its check port refused
the connection): nothing ambiguous about a dead HAProxy, and a reload never looks like one (HAProxy's master
stays and keeps its listeners), so it withdraws at the first sight; timeouts, 5xx and server counts, which a
reload or a slow moment can produce, keep `fall`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Route(Enum):
    WITHDRAWN = "withdrawn"
    ANNOUNCED = "announced"


class Change(Enum):
    ANNOUNCE = "announce"
    WITHDRAW = "withdraw"


@dataclass
class VipMachine:
    """Hysteresis for one VIP. `observe` returns the route change to make now, if any."""

    rise: int
    fall: int
    route: Route = Route.WITHDRAWN
    good_streak: int = 0
    bad_streak: int = 0
    since: float = 0.0
    announces: int = 0
    withdraws: int = 0
    last_ok: bool | None = None
    last_reason: str = "not checked yet"
    last_checked: float = 0.0
    drained: bool = False

    def observe(
        self, ok: bool, reason: str, now: float, drained: bool = False, known: bool = True, decisive: bool = False
    ) -> Change | None:
        """Feed one check result. `drained` (maintenance) forces the VIP down regardless of `ok`. A result
        that is not `known` (HAProxy has not checked the servers yet) moves nothing: route and streaks stay.
        A `decisive` failure (HAProxy is dead) withdraws at once instead of after `fall`; coming back still
        takes `rise` good checks."""
        self.last_ok, self.last_reason, self.last_checked, self.drained = (ok if known else None), reason, now, drained
        if not known and not drained:
            return None
        if ok:
            self.good_streak += 1
            self.bad_streak = 0
        else:
            self.bad_streak += 1
            self.good_streak = 0
        if drained:
            # a drain that ends must not announce at once: the node proves itself `rise` times again
            self.good_streak = 0
            return self._move(Route.WITHDRAWN, now)
        if self.route is Route.WITHDRAWN and self.good_streak >= self.rise:
            return self._move(Route.ANNOUNCED, now)
        if self.route is Route.ANNOUNCED and not ok and (decisive or self.bad_streak >= self.fall):
            return self._move(Route.WITHDRAWN, now)
        return None

    def adopt(self, route: Route, now: float) -> None:
        """Take the route ExaBGP really holds as this machine's (read from ExaBGP's adj-rib-out: a respawned
        health program, or a drift). No line is due: ExaBGP already does what the machine now says. The
        streaks stay, so an announced VIP that is failing is withdrawn after `fall` bad checks, not `rise`."""
        if self.route is not route:
            self.route = route
            self.since = now

    def force_withdrawn(self, now: float) -> Change | None:
        """Withdraw now (shutdown); returns WITHDRAW only if the route was announced."""
        self.good_streak = 0
        return self._move(Route.WITHDRAWN, now)

    def _move(self, target: Route, now: float) -> Change | None:
        if self.route is target:
            return None
        self.route = target
        self.since = now
        if target is Route.ANNOUNCED:
            self.announces += 1
            return Change.ANNOUNCE
        self.withdraws += 1
        return Change.WITHDRAW
