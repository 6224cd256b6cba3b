"""What one health loop costs as the VIPs grow: 1, 10, 100, 1000 VIPs, one backend of 8 servers each.

    .venv/bin/python -m bench.healthloop [--vips 1,10,100,1000] [--loops 200] [--runs 3]

A real HAProxy (`haproxy -W -db`, the distribution's binary) serves the health URL and the stats socket,
with one backend per VIP (8 servers each, unchecked: the rows are what a site's `show stat` has, the
checks' own load is not measured here). The loop is ober-health's own `run_checks` (HTTP check, drain
files, one `show stat`, one result per VIP), run back to back. Printed per VIP count: loop time p50/p99,
the health program's CPU per loop, and that CPU as a share of one core at the default 0.2 s interval (late
loops run back to back; the loop is on time while p99 < interval). HAProxy's own time to answer `show stat`
is in the loop time, not in the CPU column.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from ober_health.checks import read_stats, run_checks
from ober_health.config import Config, HealthConfig, VipConfig

SERVERS = 8
INTERVAL = 0.2  # the deploy's default health interval


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def haproxy_config(vips: int, health_port: int, socket_path: Path) -> str:
    lines = [
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 5s",
        "    timeout server 5s",
        "frontend health",
        f"    bind 127.0.0.1:{health_port}",
        "    monitor-uri /health",
    ]
    for index in range(vips):
        lines.append(f"backend be_{index}")
        lines += [f"    server s{n} 127.0.0.{n + 2}:7480" for n in range(SERVERS)]
    return "\n".join(lines) + "\n"


def measure(vips: int, loops: int, workdir: Path) -> tuple[list[float], float, int]:
    """(loop seconds, CPU seconds per loop, rows of `show stat`) for `vips` VIPs."""
    health_port = free_port()
    socket_path = workdir / f"stats-{vips}.sock"
    config_path = workdir / f"haproxy-{vips}.cfg"
    config_path.write_text(haproxy_config(vips, health_port, socket_path))
    proc = subprocess.Popen(
        ["haproxy", "-W", "-db", "-f", str(config_path)], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while read_stats(str(socket_path), 1.0)[0] is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"HAProxy with {vips} backends did not start")
            time.sleep(0.05)
        config = Config(
            health=HealthConfig(
                haproxy_url=f"http://127.0.0.1:{health_port}/health",
                stats_socket=str(socket_path),
                maintenance_file=str(workdir / "maintenance"),
                drain_file=str(workdir / "drain"),
            ),
            vips=tuple(VipConfig(f"2001:db8:1000::{i:x}/128", backend=f"be_{i}", min_up=1) for i in range(vips)),
        )
        rows = read_stats(str(socket_path), 1.0)[0] or []
        times = []
        cpu_started = time.process_time()
        for _ in range(loops):
            started = time.perf_counter()
            result = run_checks(config)
            times.append(time.perf_counter() - started)
            assert all(r.ok for r in result.results.values()), "a VIP failed its check in the benchmark"
        cpu = (time.process_time() - cpu_started) / loops
        return times, cpu, len(rows)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vips", default="1,10,100,1000", help="comma-separated VIP counts")
    parser.add_argument("--loops", type=int, default=200, help="loops per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per VIP count")
    args = parser.parse_args()
    print(f"health loop cost, {SERVERS} servers per backend, {args.runs} runs x {args.loops} loops each")
    print(f"{'VIPs':>6} {'rows':>6} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/loop':>12} {'core at 0.2 s':>14} on time")
    with tempfile.TemporaryDirectory(prefix="ober-bench-") as tmp:
        for vips in (int(v) for v in args.vips.split(",")):
            times: list[float] = []
            cpus: list[float] = []
            rows = 0
            for _ in range(args.runs):
                run_times, cpu, rows = measure(vips, args.loops, Path(tmp))
                times += run_times
                cpus.append(cpu)
            cpu = statistics.median(cpus)
            p99 = quantile(times, 0.99)
            share = cpu / max(INTERVAL, statistics.median(times))  # a late loop runs back to back
            print(
                f"{vips:>6} {rows:>6} {quantile(times, 0.5) * 1000:>8.2f} {p99 * 1000:>8.2f} {cpu * 1000:>12.2f}"
                f" {share * 100:>13.1f}% {'yes' if p99 < INTERVAL else 'NO'}"
            )


if __name__ == "__main__":
    main()
