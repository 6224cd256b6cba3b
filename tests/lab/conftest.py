"""Fast-lab fixtures: a fresh lab per test (1-2 s up, 0.2 s down), so a test that breaks a node breaks
nothing for the next one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.fastlab import FastLab
from tests.conftest import record_figure, unique_prefix

LabFactory = Callable[..., FastLab]


@pytest.fixture(autouse=True)
def _needs_netns(netns_ok: None) -> None:
    """Skip (with the reason) every lab test where namespaces cannot be made."""


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[LabFactory]:
    """Build a lab with custom settings; every lab built is torn down, even if the test fails."""
    labs: list[FastLab] = []

    def build(**kwargs: object) -> FastLab:
        lab = FastLab(tmp_path / f"lab{len(labs)}", prefix=unique_prefix(), **kwargs)  # type: ignore[arg-type]
        labs.append(lab)
        started = time.monotonic()
        lab.up()
        record_figure(
            f"fast lab up ({lab.router_kind}, {lab.node_count} nodes, routes in FIB)", time.monotonic() - started
        )
        return lab

    yield build
    for lab in labs:
        lab.down()
        record_figure("fast lab down", lab.timings["down"])
        assert not lab.leftovers, f"processes outlived their supervisor: {lab.leftovers}"


@pytest.fixture
def lab(make_lab: LabFactory) -> FastLab:
    return make_lab()
