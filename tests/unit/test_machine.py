"""The rise/fall machine of one VIP: when a route changes, and that it changes only then."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ober_health.machine import Change, Route, VipMachine


def feed(machine: VipMachine, results: list[bool], start: float = 1.0, drained: bool = False) -> list[Change | None]:
    """Observe `results` one per second from `start`; the change (or None) after each."""
    return [machine.observe(ok, "ok" if ok else "bad", start + i, drained=drained) for i, ok in enumerate(results)]


def announced(rise: int = 3, fall: int = 2) -> VipMachine:
    machine = VipMachine(rise=rise, fall=fall)
    assert feed(machine, [True] * rise)[-1] is Change.ANNOUNCE
    return machine


def test_starts_withdrawn_and_announces_only_on_the_rise_th_good_check() -> None:
    machine = VipMachine(rise=3, fall=2)
    assert machine.route is Route.WITHDRAWN
    assert feed(machine, [True, True, True]) == [None, None, Change.ANNOUNCE]
    assert machine.route is Route.ANNOUNCED  # type: ignore[comparison-overlap]  # mypy keeps the narrowing across feed()
    assert machine.since == 3.0  # the time of the check that made the change


def test_rise_one_announces_on_the_first_good_check() -> None:
    machine = VipMachine(rise=1, fall=1)
    assert feed(machine, [True]) == [Change.ANNOUNCE]


def test_bad_checks_before_the_first_announce_emit_nothing() -> None:
    machine = VipMachine(rise=3, fall=2)
    # withdrawn is the initial state: bad checks must not produce a withdraw for a route never announced
    assert feed(machine, [False] * 10) == [None] * 10
    assert machine.withdraws == 0
    assert machine.route is Route.WITHDRAWN


def test_a_bad_check_in_the_middle_of_a_rise_starts_it_over() -> None:
    machine = VipMachine(rise=3, fall=2)
    assert feed(machine, [True, True, False, True, True]) == [None] * 5
    assert machine.route is Route.WITHDRAWN
    assert machine.good_streak == 2
    assert feed(machine, [True], start=10) == [Change.ANNOUNCE]


def test_withdraws_on_the_fall_th_consecutive_bad_check() -> None:
    machine = announced(rise=3, fall=2)
    assert feed(machine, [False, False], start=10) == [None, Change.WITHDRAW]
    assert machine.route is Route.WITHDRAWN
    assert machine.since == 11.0


def test_a_good_check_between_bad_ones_keeps_the_route() -> None:
    machine = announced(rise=3, fall=2)
    assert feed(machine, [False, True, False, True, False], start=10) == [None] * 5
    assert machine.route is Route.ANNOUNCED


def test_after_a_withdraw_the_route_needs_rise_good_checks_again() -> None:
    machine = announced(rise=3, fall=2)
    feed(machine, [False, False], start=10)
    assert feed(machine, [True, True, True], start=20) == [None, None, Change.ANNOUNCE]


def test_no_change_is_emitted_while_nothing_changes() -> None:
    machine = announced(rise=3, fall=2)
    assert feed(machine, [True] * 1000, start=10) == [None] * 1000
    feed(machine, [False, False], start=2000)
    assert feed(machine, [False] * 1000, start=3000) == [None] * 1000
    assert (machine.announces, machine.withdraws) == (1, 1)


def test_drain_withdraws_at_once_without_waiting_for_fall() -> None:
    machine = announced(rise=3, fall=5)
    assert machine.observe(True, "ok", 10.0, drained=True) is Change.WITHDRAW
    assert machine.route is Route.WITHDRAWN
    assert machine.drained is True
    # and stays withdrawn, silently, for as long as the drain lasts, whatever the checks say
    assert feed(machine, [True] * 20, start=11, drained=True) == [None] * 20
    assert machine.route is Route.WITHDRAWN


def test_end_of_drain_needs_rise_good_checks_before_announcing() -> None:
    machine = announced(rise=3, fall=2)
    feed(machine, [True] * 5, start=10, drained=True)
    assert feed(machine, [True, True, True], start=20) == [None, None, Change.ANNOUNCE]
    assert machine.drained is False


def test_drain_of_a_withdrawn_vip_emits_nothing() -> None:
    machine = VipMachine(rise=3, fall=2)
    feed(machine, [True, True])
    assert machine.observe(True, "ok", 5.0, drained=True) is None
    assert machine.withdraws == 0
    # the two good checks before the drain do not count towards the rise after it
    assert feed(machine, [True, True, True], start=10) == [None, None, Change.ANNOUNCE]


def test_force_withdrawn_withdraws_an_announced_vip_once() -> None:
    machine = announced()
    assert machine.force_withdrawn(10.0) is Change.WITHDRAW
    assert machine.force_withdrawn(11.0) is None
    assert machine.since == 10.0
    assert (machine.announces, machine.withdraws) == (1, 1)


def test_force_withdrawn_of_a_withdrawn_vip_emits_nothing_and_resets_the_rise() -> None:
    machine = VipMachine(rise=3, fall=2)
    feed(machine, [True, True])
    assert machine.force_withdrawn(5.0) is None
    assert machine.withdraws == 0
    assert feed(machine, [True], start=10) == [None]


def test_transition_counters_and_last_result() -> None:
    machine = VipMachine(rise=2, fall=2)
    feed(machine, [True, True, False, False, True, True, False, False, True, True])
    assert (machine.announces, machine.withdraws) == (3, 2)
    assert machine.route is Route.ANNOUNCED
    machine.observe(False, "HAProxy said 503", 42.0)
    assert machine.last_ok is False
    assert machine.last_reason == "HAProxy said 503"
    assert machine.last_checked == 42.0
    assert machine.bad_streak == 1 and machine.good_streak == 0


@given(
    rise=st.integers(min_value=1, max_value=6),
    fall=st.integers(min_value=1, max_value=6),
    results=st.lists(st.booleans(), max_size=200),
)
def test_property_changes_follow_the_last_checks(rise: int, fall: int, results: list[bool]) -> None:
    machine = VipMachine(rise=rise, fall=fall)
    changes: list[Change] = []
    for i, ok in enumerate(results):
        change = machine.observe(ok, "", float(i))
        seen = results[: i + 1]
        if change is Change.ANNOUNCE:
            assert len(seen) >= rise and all(seen[-rise:]), (rise, seen)
        elif change is Change.WITHDRAW:
            assert len(seen) >= fall and not any(seen[-fall:]), (fall, seen)
        if change is not None:
            changes.append(change)
        # the route is what the emitted changes say it is: nothing else ever moves it
        expected = Route.ANNOUNCED if changes and changes[-1] is Change.ANNOUNCE else Route.WITHDRAWN
        assert machine.route is expected
    # announce, withdraw, announce, ...: never the same change twice in a row, never a withdraw first
    assert changes == [Change.ANNOUNCE if n % 2 == 0 else Change.WITHDRAW for n in range(len(changes))]
    assert (machine.announces, machine.withdraws) == (changes.count(Change.ANNOUNCE), changes.count(Change.WITHDRAW))


@given(
    rise=st.integers(min_value=1, max_value=6),
    fall=st.integers(min_value=1, max_value=6),
    steps=st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200),
)
def test_property_with_drains(rise: int, fall: int, steps: list[tuple[bool, bool]]) -> None:
    """(ok, drained) steps: a drained step never ends announced; an announce needs `rise` good undrained checks."""
    machine = VipMachine(rise=rise, fall=fall)
    changes: list[Change] = []
    for i, (ok, drained) in enumerate(steps):
        change = machine.observe(ok, "", float(i), drained=drained)
        if drained:
            assert machine.route is Route.WITHDRAWN
        if change is Change.ANNOUNCE:
            recent = steps[: i + 1][-rise:]
            assert len(recent) == rise and all(good and not dr for good, dr in recent), (rise, steps[: i + 1])
        elif change is Change.WITHDRAW:
            recent = steps[: i + 1][-fall:]
            assert drained or (len(recent) == fall and not any(good for good, _ in recent)), (fall, steps[: i + 1])
        if change is not None:
            changes.append(change)
    assert changes == [Change.ANNOUNCE if n % 2 == 0 else Change.WITHDRAW for n in range(len(changes))]


def test_an_unknown_result_moves_nothing_and_keeps_the_streaks() -> None:
    """HAProxy just reloaded and has not checked its servers yet: neither a bad nor a good check."""
    machine = announced(rise=3, fall=2)
    assert machine.observe(False, "bad", 10.0) is None  # one bad check: streak 1 of 2
    for second in range(11, 20):
        assert machine.observe(False, "not checked yet", float(second), known=False) is None
    assert machine.route is Route.ANNOUNCED and machine.last_ok is None
    assert machine.observe(False, "bad", 20.0) is Change.WITHDRAW  # the streak went on where it was
    for second in range(21, 30):
        assert machine.observe(True, "not checked yet", float(second), known=False) is None
    assert machine.route is Route.WITHDRAWN and machine.good_streak == 0  # type: ignore[comparison-overlap]
    assert machine.observe(False, "not checked", 30.0, drained=True, known=False) is None  # already down


def test_a_decisive_failure_withdraws_at_once_and_rise_still_applies() -> None:
    """HAProxy gone (its master exited, its port refused): no `fall` to wait for; back, it proves itself."""
    machine = announced(rise=3, fall=5)
    assert machine.observe(False, "refused", 10.0, decisive=True) is Change.WITHDRAW
    assert machine.route is Route.WITHDRAWN and machine.since == 10.0 and machine.withdraws == 1
    assert machine.observe(False, "refused", 11.0, decisive=True) is None  # already down: one line only
    assert feed(machine, [True, True, True], start=12) == [None, None, Change.ANNOUNCE]


def test_decisive_says_nothing_about_a_good_check() -> None:
    machine = announced(rise=3, fall=2)
    assert machine.observe(True, "200", 10.0, decisive=True) is None
    assert machine.route is Route.ANNOUNCED and machine.bad_streak == 0
