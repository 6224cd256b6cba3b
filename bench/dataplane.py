"""Issue 14's figures in one run, side by side: the data plane of a node and what it is compared with.

    .venv/bin/python -m bench.dataplane [--runs 3] [--quick]      # root; about 6 minutes (--quick: 1 run of each)

Sections, each its benchmark's own `section(runs)` (their modules say how they measure):
  bench.vs_healthcheck   ober-health vs ExaBGP's healthcheck: kill, hang, a VIP's backend down, CPU
  bench.failover         HAProxy killed -> router FIB on the event path (goal: 20 ms at p99)
  bench.healthloop       the health loop at 1, 10, 100, 1000 VIPs (goal: on time at 1000, <= 10 % of a core)
  bench.longflows        long downloads on the other nodes through a drain, resilient router (goal: all)
  bench.tls              TLS MB/s and handshakes per HAProxy core as fractions of `openssl speed` (when the
                         module is there)
A section that fails prints its error as its row; the others still run. Prints one Markdown table (the
README's "Figures" are this table) and the total wall time.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from collections.abc import Callable

from bench import failover, healthloop, longflows, vs_healthcheck
from bench.figures import Figure, markdown


def tls_section(runs: int) -> list[Figure]:
    """bench.tls lands separately: imported only here, a missing module is a row that says so."""
    try:
        tls = importlib.import_module("bench.tls")
    except ModuleNotFoundError:
        return [Figure("TLS MB/s and handshakes per HAProxy core / `openssl speed`", "not measured: bench.tls missing")]
    rows: list[Figure] = tls.section(runs)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (kill -> FIB: 10x as many)")
    parser.add_argument("--quick", action="store_true", help="1 run of each (kill -> FIB: 10), shorter samples")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    sections: list[tuple[str, Callable[[], list[Figure]]]] = [
        ("vs_healthcheck", lambda: vs_healthcheck.section(runs, 10.0 if args.quick else 20.0)),
        ("failover", lambda: failover.section(10 * runs)),
        ("healthloop", lambda: healthloop.section(min(runs, 2), loops=20 if args.quick else 50)),
        ("longflows", lambda: longflows.section(runs)),
        ("tls", lambda: tls_section(runs)),
    ]
    started = time.monotonic()
    rows: list[Figure] = []
    for name, run in sections:
        began = time.monotonic()
        try:
            rows += run()
        except Exception as exc:  # one broken section must not lose the others' figures
            traceback.print_exc()
            rows.append(Figure(f"{name}", f"failed: {type(exc).__name__}: {exc}"))
        print(f"{name}: {time.monotonic() - began:.0f} s", flush=True)
    print()
    print(markdown("ober data plane (python -m bench.dataplane)", rows))
    print(f"total wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
