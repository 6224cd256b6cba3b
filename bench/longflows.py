"""Long downloads surviving a drain of another node: a resilient router vs plain multipath. Prints figures.

    .venv/bin/python -m bench.longflows [--runs 5] [--nodes 3] [--flows 16]

Each run, alternating the two routers (so that the machine's load falls on both alike): a fast lab with a
BIRD router and `--nodes` nodes, one VIP, a client namespace behind the router, `--flows` paced downloads
of 3 MB at 0.5 MB/s from distinct source ports; once all have their headers, node 1 (the router's first
next hop) is drained with `ober drain --wait` (lab.drainflows). Counted: the downloads on the *other*
nodes that completed with every byte, and how long `ober drain --wait` took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench.figures import Figure
from lab.drainflows import DrainRun, drain_under_downloads
from lab.fastlab import FastLab

VIP = "203.0.113.10/32"


def one_run(ecmp: str, nodes: int, flows: int, index: int) -> DrainRun:
    workdir = Path(tempfile.mkdtemp(prefix="ober-bench-lf-"))
    prefix = f"bl{os.getpid() % 1000}{index % 100}"
    with FastLab(workdir, prefix=prefix, nodes=nodes, vips=(VIP,), ecmp=ecmp, client=True) as lab:
        return drain_under_downloads(lab, next(iter(lab.nodes)), VIP, flows=flows)


def section(runs: int, nodes: int = 3, flows: int = 16) -> list[Figure]:
    """bench.dataplane's row: downloads on the other nodes completed through a drain, resilient vs plain
    multipath, `runs` runs of each, alternated."""
    totals: dict[str, list[DrainRun]] = {"resilient": [], "multipath": []}
    for index in range(runs):
        for ecmp, done in totals.items():
            done.append(one_run(ecmp, nodes, flows, 2 * index + (ecmp == "multipath")))

    def count(ecmp: str) -> tuple[int, int]:
        return sum(r.survived for r in totals[ecmp]), sum(len(r.on_others) for r in totals[ecmp])

    survived, others = count("resilient")
    plain_survived, plain_others = count("multipath")
    drains = [r.drain_seconds for r in totals["resilient"]]
    return [
        Figure(
            f"long downloads (3 MB at 0.5 MB/s) on the other nodes through `ober drain --wait` of one of {nodes}"
            f" nodes, resilient router ({runs} runs)",
            f"{survived}/{others} complete; drain p50 {statistics.median(drains):.1f} s",
            f"plain multipath {plain_survived}/{plain_others}",
            "all",
            survived == others,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per router (%(default)s)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--flows", type=int, default=16)
    args = parser.parse_args()
    totals: dict[str, list[DrainRun]] = {"resilient": [], "multipath": []}
    for index in range(args.runs):
        for ecmp, runs in totals.items():
            run = one_run(ecmp, args.nodes, args.flows, 2 * index + (ecmp == "multipath"))
            runs.append(run)
            print(
                f"run {index + 1} {ecmp:<9}  other nodes {run.survived:>2}/{len(run.on_others):<2} complete"
                f"  drained node {len(run.on_victim):>2} flows  drain {run.drain_seconds:4.1f}s"
                f" (exit {run.drain.returncode if run.drain else '-'})",
                flush=True,
            )
    print()
    for ecmp, runs in totals.items():
        survived = sum(r.survived for r in runs)
        others = sum(len(r.on_others) for r in runs)
        drains = [r.drain_seconds for r in runs]
        print(
            f"{ecmp:<9}  downloads on the other nodes completed: {survived}/{others}"
            f" ({100 * survived / max(others, 1):.0f} %) over {len(runs)} runs;"
            f" ober drain --wait p50 {statistics.median(drains):.1f}s, max {max(drains):.1f}s"
        )


if __name__ == "__main__":
    main()
