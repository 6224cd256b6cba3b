"""How long the operator's deploy takes as the fleet grows, and what pyinfra's parallelism gives.

    .venv/bin/python -m bench.deploytime [--nodes 1,3,6] [--runs 2]     # root; about 10 minutes

For each fleet size the fleet lab boots that many systemd nodes (lab/fleet.py) and runs the operator's
command `pyinfra -y inventories/lab.py deploy.py` from a fresh clone in the controller namespace:
- `first`: the deploy of bare nodes (ober's wheel built from the clone, uploaded, venvs made, HAProxy and
  ExaBGP configured; ExaBGP started one node at a time so the fleet never loses every route at once);
- `no change`: the same command again, `--runs` times, with pyinfra's default parallelism (every host at
  once) and with `--parallel 1` (one host after another), alternated run by run.
The ratio `--parallel 1` / default is what connecting to and checking hosts side by side gives; the first
deploy's part that does not shrink with parallelism is the roll (one node at a time, on purpose).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.figures import Figure, markdown
from lab.fleet import Fleet
from tests.conftest import unique_prefix
from tests.fleet.conftest import fresh_clone


def timed_deploy(fleet: Fleet, *extra: str) -> float:
    """Seconds of one deploy; a failed deploy ends the benchmark with pyinfra's output."""
    result = fleet.deploy(*extra)
    if not result.ok:
        raise SystemExit(f"deploy failed: {result.summary()}\n{result.output[-3000:]}")
    return result.seconds


def measure(nodes: int, runs: int, workdir: Path) -> tuple[float, list[float], list[float]]:
    """(first deploy, no-change deploys at the default parallelism, no-change deploys with --parallel 1)."""
    checkout = fresh_clone(workdir / "clone")
    with Fleet(workdir / "fleet", prefix=unique_prefix("dt"), nodes=nodes, checkout=checkout, log=False) as fleet:
        first = timed_deploy(fleet)
        fleet.wait_routes(timeout=60)
        default: list[float] = []
        serial: list[float] = []
        for _ in range(runs):
            default.append(timed_deploy(fleet))
            serial.append(timed_deploy(fleet, "--parallel", "1"))
        return first, default, serial


def section(sizes: list[int], runs: int) -> list[Figure]:
    """One row per fleet size and kind of deploy (printing each as it is measured)."""
    rows: list[Figure] = []
    for nodes in sizes:
        with tempfile.TemporaryDirectory(prefix="ober-deploytime-") as tmp:
            started = time.monotonic()
            first, default, serial = measure(nodes, runs, Path(tmp))
        default_p50, serial_p50 = statistics.median(default), statistics.median(serial)
        print(
            f"{nodes} node(s): first {first:6.1f} s   no change {default_p50:5.1f} s (runs {_runs(default)})"
            f"   --parallel 1 {serial_p50:5.1f} s (runs {_runs(serial)})   ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
        rows.append(Figure(f"first deploy, {nodes} node(s), fresh clone", f"{first:.1f} s"))
        rows.append(
            Figure(
                f"no-change deploy, {nodes} node(s), {runs} runs (median)",
                f"{default_p50:.1f} s",
                f"--parallel 1: {serial_p50:.1f} s ({serial_p50 / default_p50:.2f}x)",
            )
        )
    return rows


def _runs(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,3,6", help="fleet sizes (default 1,3,6)")
    parser.add_argument("--runs", type=int, default=2, help="no-change deploys per parallelism (default 2)")
    args = parser.parse_args()
    started = time.monotonic()
    rows = section([int(n) for n in args.nodes.split(",")], args.runs)
    print()
    print(markdown("Fleet deploy time (fleet lab, BIRD router, operator's pyinfra command)", rows))
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
