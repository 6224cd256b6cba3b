"""`ober drain --wait` after the withdraw: client sessions are waited for while they make progress, and
the orphans the withdraw left (their clients now reach another node) are let go and reported."""

from __future__ import annotations

from collections.abc import Callable

from ober_health.drain import Sample, SessionWait, total_bytes_out, wait_sessions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def samples(clock: Clock, series: Callable[[float], Sample | None]) -> Callable[[], Sample | None]:
    """HAProxy's counters as a function of seconds since the wait began."""
    start = clock.now
    return lambda: series(clock.now - start)


def run(series: Callable[[float], Sample | None], timeout: float = 30.0, stall: float = 2.0) -> SessionWait:
    clock = Clock()
    return wait_sessions(samples(clock, series), clock.now + timeout, stall=stall, clock=clock, sleep=clock.sleep)


def test_orphaned_sessions_are_let_go_after_the_stall_not_at_the_timeout() -> None:
    """The measured case: 7 sessions whose clients the router moved away; nothing moves on them."""
    waited = run(lambda t: Sample(sessions=7, bytes=5_000_000))
    assert waited.stalled and not waited.timed_out and waited.left == 7
    assert 2.0 <= waited.seconds < 2.5
    assert waited.line(2.0) == (
        "7 client session(s) still open after 2.0s, no progress for 2s (their clients now reach another node): let go"
    )


def test_sessions_that_move_bytes_are_waited_for_until_they_end() -> None:
    """A download still served (bytes grow) holds the drain; it ends at 10 s and the wait ends with it."""
    waited = run(lambda t: Sample(1, int(t * 100_000)) if t < 10 else Sample(0, 1_000_000))
    assert waited.left == 0 and not waited.stalled and 10.0 <= waited.seconds < 10.5
    assert waited.line(2.0).startswith("no client session left")


def test_sessions_ending_one_by_one_count_as_progress() -> None:
    """No byte moves, but a session ends every 1.5 s (< stall): the wait goes on until none is left."""
    waited = run(lambda t: Sample(max(0, 4 - int(t / 1.5)), 0))
    assert waited.left == 0 and 6.0 <= waited.seconds < 6.5


def test_the_deadline_still_bounds_sessions_that_keep_moving() -> None:
    waited = run(lambda t: Sample(3, int(t * 1e6)), timeout=5.0)
    assert waited.timed_out and waited.left == 3 and 5.0 <= waited.seconds < 5.5
    assert "still moving at the deadline: let go" in waited.line(2.0)


def test_a_stall_then_progress_resets_the_stall() -> None:
    """Bytes stop for 1.5 s (less than `stall`) and resume: not let go at 2 s."""
    waited = run(lambda t: Sample(2, 0 if t < 1.5 else int(t * 100_000)) if t < 6 else Sample(0, 600_000))
    assert waited.left == 0 and waited.seconds >= 6.0


def test_no_sessions_or_no_haproxy_end_at_once() -> None:
    assert run(lambda t: Sample(0, 123)).seconds == 0.0
    gone = run(lambda t: None)
    assert gone.left is None and gone.seconds == 0.0
    assert "does not answer" in gone.line(2.0)


def test_health_check_bytes_alone_are_not_progress() -> None:
    """Orphans hold still while HAProxy's checks send ~1 KiB/s: that is not a client making progress."""
    waited = run(lambda t: Sample(3, 10_000 + int(t * 1000)))
    assert waited.stalled and waited.left == 3 and waited.seconds < 2.5


def test_bytes_sent_are_read_from_show_info() -> None:
    info = "Name: HAProxy\nVersion: 2.6.12\nTotalBytesOut: 529592\nTotalSplicdedBytesOut: 0\nBytesOutRate: 386528\n"
    assert total_bytes_out(info) == 529_592
    assert total_bytes_out("Name: HAProxy\nVersion: 2.2.0\n") == 0
