"""One shape for the figures every benchmark prints, so one command can put them side by side.

A benchmark section returns `Figure` rows; `markdown` renders them as the table the README includes, with
the date and the machine they were measured on (figures without their machine mislead).
"""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from pathlib import Path


def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (numpy's default); `values` must not be empty."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


@dataclass(frozen=True)
class Figure:
    """One row: what was measured, ober's figure, what it is compared with, the goal and whether it is met.

    `met` is None where the issue sets no goal for the row.
    """

    measure: str
    ober: str
    other: str = ""
    goal: str = ""
    met: bool | None = None


def machine() -> str:
    """The machine a run is measured on: CPU model, CPUs, load average (benchmarks share it)."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, load average {load:.1f}"


def markdown(title: str, figures: list[Figure]) -> str:
    """The rows as a Markdown table headed by the date and the machine."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    lines = [
        f"{title} ({stamp}; {machine()})",
        "",
        "| measure | ober | compared with | goal | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in figures:
        met = "" if row.met is None else ("yes" if row.met else "no")
        lines.append(f"| {row.measure} | {row.ober} | {row.other} | {row.goal} | {met} |")
    return "\n".join(lines) + "\n"
