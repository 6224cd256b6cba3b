"""What one health loop costs as the VIPs grow: 1, 10, 100, 1000 VIPs, one backend of 8 servers each.

    .venv/bin/python -m bench.healthloop [--vips 1,10,100,1000] [--loops 200] [--runs 3]

A real HAProxy (`haproxy -W -db`, the distribution's binary) serves the health URL and the stats socket,
with one backend per VIP (8 servers each, unchecked: the servers are what a site's HAProxy has, the checks'
own load is not measured here). The loop is ober-health's own: `run_checks` (HTTP check, drain files, one
read of the servers' states, one result per VIP) then the decider's `on_check` (rise/fall per VIP, the state
built, encoded, written to a state file and handed to the endpoint), run back to back. Printed per VIP
count: loop time p50/p99, the health program's CPU per loop (checks + decide and publish), and that CPU as
a share of one core at the default 0.2 s interval (late loops run back to back; the loop is on time while
p99 < interval). HAProxy's own time to answer is in the loop time, not in the CPU columns.
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
from dataclasses import dataclass
from pathlib import Path

from bench.figures import Figure, percentile
from ober_health.checks import StatsCache, read_backends, run_checks
from ober_health.config import Config, HealthConfig, PeerConfig, VipConfig
from ober_health.program import HealthProgram, Phase

SERVERS = 8
INTERVAL = 0.2  # the deploy's default health interval
GOAL_SHARE = 0.10  # issue 14: on time at 1000 VIPs, at most 10 % of a core


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def haproxy_config(vips: int, health_port: int, socket_path: Path) -> str:
    lines = [
        "global",
        f"    stats socket {socket_path} mode 600 level user",
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


class _Notifier:
    def notify(self, message: str) -> bool:
        return True


class _LoopClock:
    """The decider's clock as at the real interval: loops run back to back here, but a state republished
    every QUIET_PUBLISH seconds must count as often as at INTERVAL, not once per 0.5 s of a faster loop."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


@dataclass
class Run:
    times: list[float]  # wall seconds per loop
    checks_cpu: float  # CPU seconds per loop in run_checks
    decide_cpu: float  # CPU seconds per loop in on_check (decide, build, encode, write, publish the state)
    servers: int
    state_bytes: int


def measure(vips: int, loops: int, workdir: Path) -> Run:
    """One HAProxy with `vips` backends, `loops` loops of ober-health's checks and decider back to back."""
    health_port = free_port()
    socket_path = workdir / f"stats-{vips}.sock"
    config_path = workdir / f"haproxy-{vips}.cfg"
    config_path.write_text(haproxy_config(vips, health_port, socket_path))
    proc = subprocess.Popen(
        ["haproxy", "-W", "-db", "-f", str(config_path)], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while read_backends(str(socket_path), 1.0)[0] is None:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"HAProxy with {vips} backends did not start")
            time.sleep(0.05)
        config = Config(
            health=HealthConfig(
                haproxy_url=f"http://127.0.0.1:{health_port}/health",
                stats_socket=str(socket_path),
                maintenance_file=str(workdir / "maintenance"),
                drain_file=str(workdir / "drain"),
                state_file=str(workdir / "state.json"),
            ),
            peers=(PeerConfig("2001:db8::1", 65000),),
            vips=tuple(VipConfig(f"2001:db8:1000::{i:x}/128", backend=f"be_{i}", min_up=1) for i in range(vips)),
        )
        published: list[bytes] = [b""]
        clock = _LoopClock()
        program = HealthProgram(
            config, lambda data: None, _Notifier(), clock=clock, publish=lambda data: published.__setitem__(0, data)
        )
        program.phase = Phase.RUNNING  # no ExaBGP here: the decider runs as after its reconciliation
        servers = sum(s.total for s in (read_backends(str(socket_path), 1.0)[0] or {}).values())
        times = []
        checks_cpu = decide_cpu = 0.0
        cache = StatsCache()  # as ober_health.main's checker: from 200 VIPs on, one read serves two loops
        for _ in range(loops):
            started = time.perf_counter()
            cpu0 = time.process_time()
            result = run_checks(config, cache=cache)
            # the loops run back to back here: age the cache by the sleep a loop on time would have had
            cache.read_at -= max(0.0, INTERVAL - (time.perf_counter() - started))
            cpu1 = time.process_time()
            program.on_check(result)
            clock.now += INTERVAL
            decide_cpu += time.process_time() - cpu1
            checks_cpu += cpu1 - cpu0
            times.append(time.perf_counter() - started)
            assert all(r.ok for r in result.results.values()), "a VIP failed its check in the benchmark"
        return Run(times, checks_cpu / loops, decide_cpu / loops, servers, len(published[0]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@dataclass
class Result:
    vips: int
    servers: int
    p50: float
    p99: float
    checks_cpu: float
    decide_cpu: float
    state_bytes: int

    @property
    def cpu(self) -> float:
        return self.checks_cpu + self.decide_cpu

    @property
    def share(self) -> float:
        """CPU as a share of one core: a loop every INTERVAL, or back to back when late."""
        return self.cpu / max(INTERVAL, self.p50)

    @property
    def on_time(self) -> bool:
        return self.p99 < INTERVAL


def bench(vips: int, runs: int, loops: int, workdir: Path) -> Result:
    measured = [measure(vips, loops, workdir) for _ in range(runs)]
    times = [t for run in measured for t in run.times]
    return Result(
        vips,
        measured[0].servers,
        percentile(times, 50),
        percentile(times, 99),
        statistics.median(run.checks_cpu for run in measured),
        statistics.median(run.decide_cpu for run in measured),
        measured[0].state_bytes,
    )


def section(runs: int, vip_counts: tuple[int, ...] = (1, 10, 100, 1000), loops: int = 50) -> list[Figure]:
    """The figures for bench.dataplane: one row per VIP count, the goal at 1000 VIPs."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="ober-bench-") as tmp:
        for vips in vip_counts:
            r = bench(vips, runs, loops, Path(tmp))
            goal = vips == 1000
            figures.append(
                Figure(
                    f"health loop, {vips} VIPs x {SERVERS} servers ({runs} runs x {loops} loops): loop p50 / p99,"
                    " CPU per loop (checks + decide and publish)",
                    f"{r.p50 * 1000:.1f} / {r.p99 * 1000:.1f} ms, {r.cpu * 1000:.1f} ms"
                    f" ({r.checks_cpu * 1000:.1f} + {r.decide_cpu * 1000:.1f}) = {r.share * 100:.1f} % of a core",
                    f"interval {INTERVAL * 1000:.0f} ms",
                    "on time, <= 10 % of a core" if goal else "",
                    (r.on_time and r.share <= GOAL_SHARE) if goal else None,
                )
            )
            if goal:
                figures.append(
                    Figure(
                        f"state published per loop at {vips} VIPs (built, encoded, file + endpoint)",
                        f"{r.decide_cpu * 1000:.1f} ms CPU per loop (decide included), {r.state_bytes / 1e6:.2f} MB",
                    )
                )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vips", default="1,10,100,1000", help="comma-separated VIP counts")
    parser.add_argument("--loops", type=int, default=200, help="loops per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per VIP count")
    args = parser.parse_args()
    print(f"health loop cost, {SERVERS} servers per backend, {args.runs} runs x {args.loops} loops each")
    print(
        f"{'VIPs':>6} {'servers':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/loop':>12} {'checks':>7} {'decide':>7}"
        f" {'core at 0.2 s':>14} {'state MB':>9} on time"
    )
    with tempfile.TemporaryDirectory(prefix="ober-bench-") as tmp:
        for vips in (int(v) for v in args.vips.split(",")):
            r = bench(vips, args.runs, args.loops, Path(tmp))
            print(
                f"{vips:>6} {r.servers:>7} {r.p50 * 1000:>8.2f} {r.p99 * 1000:>8.2f} {r.cpu * 1000:>12.2f}"
                f" {r.checks_cpu * 1000:>7.2f} {r.decide_cpu * 1000:>7.2f} {r.share * 100:>13.1f}%"
                f" {r.state_bytes / 1e6:>9.3f} {'yes' if r.on_time else 'NO'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
