"""Shared fixtures: lab tests skip with a clear reason where namespaces cannot be made."""

from __future__ import annotations

import itertools
import os

import pytest

from lab.netns import netns_available

_counter = itertools.count(1)
_figures: dict[str, list[float]] = {}
_outcomes: dict[str, list[str]] = {}


def record_figure(name: str, seconds: float) -> None:
    """Keep a measured duration for the end-of-run summary (tests print figures, never assert times)."""
    _figures.setdefault(name, []).append(seconds)


def record_outcome(name: str, outcome: str) -> None:
    """Keep what a run observed that is not a duration (throughput, what a client saw under a failure) for
    the end-of-run summary, one line per run."""
    _outcomes.setdefault(name, []).append(outcome)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _figures:
        terminalreporter.section("figures (seconds)")
        for name, values in sorted(_figures.items()):
            ordered = sorted(values)
            median = ordered[len(ordered) // 2]
            terminalreporter.write_line(
                f"{name:<48} n={len(values):<3} min {ordered[0]:7.3f}  median {median:7.3f}  max {ordered[-1]:7.3f}"
            )
    if _outcomes:
        terminalreporter.section("outcomes")
        for name, outcomes in sorted(_outcomes.items()):
            for outcome in outcomes:
                terminalreporter.write_line(f"{name}: {outcome}")


def unique_prefix(kind: str = "t") -> str:
    """Namespace prefix unique to this process and call (<= 8 chars), so parallel runs never collide."""
    return f"{kind}{os.getpid() % 100000}{next(_counter) % 100}"[:8]


@pytest.fixture(scope="session")
def netns_ok() -> None:
    ok, reason = netns_available()
    if not ok:
        pytest.skip(f"lab test skipped: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/lab is a `lab` test, and needs namespaces."""
    for item in items:
        if "tests/lab/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.lab)
