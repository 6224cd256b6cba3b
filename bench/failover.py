"""How fast a failed node leaves the router's FIB, and what the health program costs. Prints figures.

    .venv/bin/python -m bench.failover [--runs 20] [--hold-runs 5] [--soak 60]

Scenarios, each repeated on the fast lab (BIRD router, 2 nodes, default health settings):
  haproxy-kill   SIGKILL of node 1's HAProxy -> node 1's next hop gone from the router's kernel FIB, side by
                 side on two labs up at once, runs alternated: `event` (the default: ober-health holds a pidfd
                 on HAProxy's master and withdraws when it exits) and `polling` (watch_haproxy = false: the
                 refused checks withdraw after `fall` of them)
  haproxy-stop   SIGSTOP of node 1's HAProxy (hung, not dead) -> next hop gone (each check times out)
  respawn        node 1's HAProxy hung and its ober-health SIGKILLed at the same moment: ExaBGP keeps the
                 routes and starts a new ober-health, which reads ExaBGP's adj-rib-out, takes them as
                 announced and withdraws after `fall` timed-out checks (the time includes its start)
  link-cut       node 1's link cut (no FIN): only BGP's hold timer (3 s, the minimum) can notice.
                 This is what a setup without a health program gets at best; the ratio says what ober buys.
  soak           CPU and RSS of one ober-health process over --soak seconds of steady checking.
Times are from the signal to the FIB change, read every 0.5 ms (`ip -batch`, lab.fibwatch.FibReader).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.figures import Figure, percentile
from lab.fastlab import FastLab
from lab.fibwatch import FibReader
from lab.procs import run
from tests.conftest import unique_prefix

VIP = "203.0.113.10/32"
CLOCK_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def summary(name: str, values: list[float]) -> str:
    ms = [1000 * v for v in values]
    return (
        f"{name:<13} n={len(ms):<3} p50 {percentile(ms, 50):7.1f} ms  p90 {percentile(ms, 90):7.1f} ms  "
        f"p99 {percentile(ms, 99):7.1f} ms  min {min(ms):7.1f}  max {max(ms):7.1f}  "
        f"stdev {statistics.pstdev(ms):6.1f}"
    )


def time_until_gone(lab: FastLab, node: str, fail: Callable[[], None]) -> float:
    ip = lab.nodes[node].host.ipv4
    fib = FibReader(lab.router_ns)
    try:
        fib.nexthops(VIP)  # the reader is up before the clock starts
        started = time.monotonic()
        fail()
        while ip in fib.nexthops(VIP):
            if time.monotonic() - started > 15:
                raise TimeoutError(f"{node}'s next hop still there after 15 s")
            time.sleep(0.0005)
        return time.monotonic() - started
    finally:
        fib.close()


def kill_once(lab: FastLab, sig: signal.Signals, event_path: bool = False) -> float:
    """One failure of node 1's HAProxy (master and workers), timed to the FIB, then HAProxy back and its
    next hop back (and, for the event path, ober-health watching the new master before the next run)."""
    node = next(iter(lab.nodes))
    proc = lab.nodes[node].proc("haproxy")
    if event_path:
        lab.nodes[node].wait_master_watched()
    figure = time_until_gone(lab, node, lambda: lab.supervisor.signal_group(proc, sig))
    if sig == signal.SIGSTOP:
        lab.supervisor.signal_group(proc, signal.SIGCONT)
    else:
        lab.supervisor.procs[proc].wait(timeout=5)
        lab.nodes[node].start_haproxy()
    lab.wait_nexthops(VIP, lab.node_ips(VIP), timeout=15)
    time.sleep(0.3)  # let HAProxy's own backend checks settle before the next run
    return figure


def bench_haproxy(lab: FastLab, runs: int, sig: signal.Signals) -> list[float]:
    return [kill_once(lab, sig) for _ in range(runs)]


def bench_kill_side_by_side(event: FastLab, polling: FastLab, runs: int) -> tuple[list[float], list[float]]:
    """The same SIGKILL on both labs, alternated run by run so that both see the same machine load."""
    with_event: list[float] = []
    with_polling: list[float] = []
    for _ in range(runs):
        with_event.append(kill_once(event, signal.SIGKILL, event_path=True))
        with_polling.append(kill_once(polling, signal.SIGKILL))
    return with_event, with_polling


def bench_respawn(lab: FastLab, runs: int) -> list[float]:
    """At most 4 runs per minute: ExaBGP gives up (and exits) after 5 deaths of its API process in 64 s."""
    node = next(iter(lab.nodes))
    proc = lab.nodes[node].proc("haproxy")
    figures = []
    for index in range(runs):
        if index and index % 4 == 0:
            time.sleep(65)
        old = health_pid(lab, node)

        def fail(old: int = old) -> None:
            lab.supervisor.signal_group(proc, signal.SIGSTOP)
            os.kill(old, signal.SIGKILL)

        figures.append(time_until_gone(lab, node, fail))
        lab.supervisor.signal_group(proc, signal.SIGCONT)
        lab.wait_nexthops(VIP, lab.node_ips(VIP), timeout=15)
        time.sleep(0.3)
    return figures


def bench_link_cut(lab: FastLab, runs: int) -> list[float]:
    node = next(iter(lab.nodes))
    figures = []
    for _ in range(runs):
        figures.append(time_until_gone(lab, node, lambda: lab.network.set_link(node, "eth0", up=False)))
        lab.network.set_link(node, "eth0", up=True)
        lab.wait_nexthops(VIP, lab.node_ips(VIP), timeout=30)
    return figures


def health_pid(lab: FastLab, node: str) -> int:
    pids = run("ip", "netns", "pids", node).stdout.split()
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"ober-health" in cmdline and b"exabgp" not in cmdline.split(b" ")[0]:
            return int(pid)
    raise RuntimeError(f"no ober-health process in {node}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(lab: FastLab, seconds: float) -> str:
    node = next(iter(lab.nodes))
    pid = health_pid(lab, node)
    cpu0, t0, rss0 = cpu_seconds(pid), time.monotonic(), rss_mib(pid)
    samples = []
    while time.monotonic() - t0 < seconds:
        time.sleep(min(5.0, seconds / 4))
        samples.append(rss_mib(pid))
    used = cpu_seconds(pid) - cpu0
    elapsed = time.monotonic() - t0
    loops = seconds / 0.2
    return (
        f"soak          {elapsed:.0f}s: CPU {100 * used / elapsed:.2f}% of one core "
        f"({1000 * used / loops:.2f} ms per check loop), RSS {rss0:.1f} MiB at start, "
        f"{max(samples):.1f} MiB max, {samples[-1]:.1f} MiB at end"
    )


def section(runs: int) -> list[Figure]:
    """bench.dataplane's row: SIGKILL of HAProxy -> the router's FIB on the event path (the default), `runs`
    times on one fast lab."""
    workdir = Path(tempfile.mkdtemp(prefix="ober-bench-"))
    with FastLab(workdir / "event", prefix=unique_prefix("be")) as lab:
        kill = [kill_once(lab, signal.SIGKILL, event_path=True) for _ in range(runs)]
    p99 = percentile(kill, 99)
    return [
        Figure(
            f"HAProxy killed (SIGKILL) -> router FIB, event path (pidfd on HAProxy's master), {runs} runs: p50 / p99",
            f"{1000 * percentile(kill, 50):.1f} / {1000 * p99:.1f} ms",
            f"max {1000 * max(kill):.1f} ms",
            "<= 20 ms at p99",
            p99 <= 0.020,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hold-runs", type=int, default=5)
    parser.add_argument("--respawn-runs", type=int, default=4)
    parser.add_argument("--soak", type=float, default=60.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ober-bench-"))
    polling_only = {"watch_haproxy": False}
    with (
        FastLab(workdir / "event", prefix=unique_prefix("be")) as lab,
        FastLab(workdir / "polling", prefix=unique_prefix("bp"), health_overrides=polling_only) as polling,
    ):
        print(f"labs up in {lab.timings['routes']:.2f}s and {polling.timings['routes']:.2f}s; health interval 0.2 s,")
        print("timeout 0.5 s, rise 3, fall 2; `event` = the default, `polling` = watch_haproxy = false")
        kill, kill_polling = bench_kill_side_by_side(lab, polling, args.runs)
        print(summary("kill event", kill), flush=True)
        print(summary("kill polling", kill_polling), flush=True)
        print(
            f"ratio         polling / event: p50 {percentile(kill_polling, 50) / percentile(kill, 50):.1f}x,"
            f" p99 {percentile(kill_polling, 99) / percentile(kill, 99):.1f}x"
        )
        polling.down()  # the other scenarios use the event lab alone
        stop = bench_haproxy(lab, max(3, args.runs // 4), signal.SIGSTOP)
        print(summary("haproxy-stop", stop), flush=True)
        if args.respawn_runs:
            print(summary("respawn", bench_respawn(lab, args.respawn_runs)), flush=True)
        if args.hold_runs:
            cut = bench_link_cut(lab, args.hold_runs)
            print(summary("link-cut", cut), flush=True)
            ratio = statistics.median(cut) / statistics.median(kill)
            print(f"ratio         hold-timer detection / ober-health event detection (p50): {ratio:.1f}x")
        if args.soak:
            print(soak(lab, args.soak), flush=True)


if __name__ == "__main__":
    main()
