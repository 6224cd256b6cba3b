"""FibTimeline.first: when the FIB first matched after a fault, from the changes it recorded."""

from __future__ import annotations

from lab.fibwatch import FibTimeline

VIP = "203.0.113.10/32"
BOTH = {VIP: frozenset({"198.51.100.11", "198.51.100.12"})}
ONE = {VIP: frozenset({"198.51.100.12"})}


def gone(hops: dict[str, frozenset[str]]) -> bool:
    return "198.51.100.11" not in hops[VIP]


def timeline(changes: list[tuple[float, dict[str, frozenset[str]]]]) -> FibTimeline:
    fib = FibTimeline("unused-netns", [VIP])  # no reader is started: only the recorded changes are read
    fib.changes = changes
    return fib


def test_first_is_the_change_after_the_fault() -> None:
    fib = timeline([(100.0, BOTH), (105.25, ONE), (108.0, BOTH)])
    assert fib.first(gone, after=105.0) == 105.25
    assert fib.first(lambda hops: hops == BOTH, after=105.25) == 108.0
    assert fib.count_after(105.0) == 2
    assert fib.fewest(VIP, after=100.0) == 1


def test_a_state_already_true_at_the_fault_counts_from_the_fault_and_none_when_never_seen() -> None:
    fib = timeline([(100.0, BOTH), (105.25, ONE)])
    assert fib.first(gone, after=106.0) == 106.0
    assert timeline([(100.0, BOTH)]).first(gone, after=101.0) is None
