"""The failure table: every failure issue 13 names, done to one booted fleet, timed at the router's FIB and
counted in failed requests. Prints each run, then a dated Markdown table (bench.figures) for the README.

    python -m bench.failures [--runs N] [--rows haproxy-kill,drain,...]     # root; about 10 minutes

One fleet (lab.fleet: 3 systemd-nspawn Debian nodes deployed by the operator's `pyinfra inventories/lab.py
deploy.py`, BIRD router, real RGW), booted once, BFD 50 ms x 3 on every node's sessions except node 3's at
the router (so one fleet shows a node dropped by BFD and one by the 3 s hold timer alone). Rows run in order;
each run waits for the fleet to be whole again (every VIP one next hop per node) before the next.

Per row: `gone` is the time from the fault (the node's clock, which is the host's, read in the same shell
that does it; or the benchmark's, for faults it does itself) to the router's FIB having no next hop of the
faulted node for any VIP; `back` is the time from the fault (or from its repair, where the repair is ours:
link up, thaw, undrain) to every VIP having its next hops again. The FIB is read every 2 ms
(lab.fibwatch.FibTimeline). A client loop through the IPv4 VIP (lab.fleet's, a new connection per request,
2 s timeout, 50 requests a second) runs for the whole row; its failed/total requests are the honest count,
expected failures included (a request in flight on a node that dies fails until the router moves it).
"""

from __future__ import annotations

import argparse
import functools
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.figures import Figure, markdown, percentile
from lab.fibwatch import FibTimeline
from lab.fleet import VIPS, ClientResult, Fleet, health_process, vip_address
from lab.keepalive import KeepAliveClient
from lab.nspawn import NspawnNode
from lab.procs import run, wait_for
from lab.router import BirdRouter
from tests.conftest import unique_prefix

OBER = "/opt/ober/venv/bin/ober"
Hops = dict[str, frozenset[str]]
CLOCK_TICKS = 100  # SC_CLK_TCK on Linux


@dataclass
class Outcome:
    """What one row measured: seconds per run, the client loop's count, notes worth printing."""

    gone: list[float] = field(default_factory=list)
    back: list[float] = field(default_factory=list)
    failed: int = 0
    total: int = 0
    notes: list[str] = field(default_factory=list)
    extra: str = ""  # a row's own figure (keep-alive failures, FIB changes, deploy seconds)
    runs: int = 0
    skipped: str = ""


class Bench:
    """The fleet, its FIB timeline and the faults the rows do."""

    def __init__(self, fleet: Fleet, timeline: FibTimeline) -> None:
        self.fleet = fleet
        self.fib = timeline
        names = list(fleet.nodes)
        self.bfd_nodes = [fleet.nodes[n] for n in names[:-1]]
        self.plain = fleet.nodes[names[-1]]  # BFD off at the router for this one: the hold timer alone

    # ---- the FIB
    def gone(self, node: NspawnNode) -> Callable[[Hops], bool]:
        addresses = {node.host.ipv4, node.host.ipv6}
        return lambda hops: all(not (hops[vip] & addresses) for vip in VIPS)

    def whole(self) -> Callable[[Hops], bool]:
        expected = {vip: frozenset(self.fleet.node_ips(vip)) for vip in VIPS}
        return lambda hops: hops == expected

    def empty(self) -> Callable[[Hops], bool]:
        return lambda hops: all(not hops[vip] for vip in VIPS)

    def wait_whole(self, timeout: float = 90.0) -> None:
        self.fleet.wait_routes(timeout=timeout)

    def timed(
        self,
        node: NspawnNode,
        fault: Callable[[], float],
        repair: Callable[[], float | None] | None = None,
        gone_timeout: float = 15.0,
        back_timeout: float = 60.0,
    ) -> tuple[float, float]:
        """Do `fault` (returns its moment), time the node's next hops gone, do `repair` (returns its moment,
        or None when the repair is not ours to time from), time them back."""
        at = fault()
        gone_at = self.fib.wait(self.gone(node), at, gone_timeout, f"{node.name}'s next hops gone")
        since = at
        if repair is not None:
            repaired = repair()
            since = repaired if repaired is not None else at
        back_at = self.fib.wait(self.whole(), max(gone_at, since), back_timeout, "every next hop back")
        return gone_at - at, back_at - since

    # ---- faults on a node
    @staticmethod
    def at(node: NspawnNode, command: str, timeout: float = 30.0) -> float:
        """Run `command` on the node; the node's clock (the host's) just before it ran."""
        out = node.ssh("sh", "-c", shlex.quote(f"date +%s.%N; {command}"), timeout=timeout).stdout.split()
        return float(out[0])

    @staticmethod
    def haproxy_pids(node: NspawnNode) -> str:
        master = node.main_pid("haproxy.service")
        return " ".join(str(pid) for pid in [master, *node.children(master)])


def client(fleet: Fleet) -> Callable[[], ClientResult]:
    """Start the row's request loop through the IPv4 VIP; the returned call stops it and gives its count."""
    proc = fleet.start_client(VIPS[0], duration=900.0)
    time.sleep(0.5)
    return lambda: fleet.stop_client(proc)


# ---- the rows


# Faults that restart ExaBGP are spaced by SPACING, as failures in life are. When exabgp.service was bound to
# haproxy.service (BindsTo=) with systemd's default start limit, two kills 4.5 s apart left it
# `start-limit-hit` and the node withdrawn for good in this benchmark's first run; the unit is PartOf= with
# StartLimitIntervalSec=0 since, but a kill during systemd's restart can still leave ExaBGP inactive.
SPACING = 12.0


def spaced(previous: float) -> None:
    time.sleep(max(0.0, previous + SPACING - time.time()))


def row_haproxy_kill(b: Bench, runs: int, out: Outcome) -> None:
    node = b.bfd_nodes[0]
    previous = 0.0
    for _ in range(runs):
        spaced(previous)
        previous = time.time()
        record(out, b.timed(node, lambda: b.at(node, "systemctl kill -s KILL haproxy.service")))


def row_haproxy_stop(b: Bench, runs: int, out: Outcome) -> None:
    node = b.bfd_nodes[0]
    for _ in range(runs):
        pids = b.haproxy_pids(node)
        try:
            record(
                out,
                b.timed(
                    node,
                    functools.partial(b.at, node, f"kill -STOP {pids}"),
                    functools.partial(b.at, node, f"kill -CONT {pids}"),
                ),
            )
        finally:
            node.ssh("sh", "-c", shlex.quote(f"kill -CONT {pids}"), check=False)


def row_backends_down(b: Bench, runs: int, out: Outcome) -> None:
    node = b.bfd_nodes[1]
    try:
        for _ in range(runs):
            record(
                out,
                b.timed(node, lambda: b.fleet.cut_backends(node, cut=True), lambda: b.fleet.cut_backends(node, False)),
            )
    finally:
        b.fleet.cut_backends(node, cut=False)


def respawned(node: NspawnNode, old: int, timeout: float = 15.0) -> int:
    def new() -> int:
        try:
            pid = health_process(node)
        except RuntimeError:
            return 0
        return pid if pid != old else 0

    wait_for(new, timeout=timeout, what=f"{node.name}: ExaBGP to start a new health program", interval=0.1)
    return new()


def row_health_kill_healthy(b: Bench, runs: int, out: Outcome) -> None:
    """ExaBGP keeps the routes and starts a new ober-health, which must take them as its own: no FIB change."""
    node = b.bfd_nodes[0]
    changes = []
    for _ in range(min(runs, 3)):  # ExaBGP gives up after 5 deaths of its API process in 64 s
        old = health_process(node)
        at = b.at(node, f"kill -KILL {old}")
        respawned(node, old)
        time.sleep(2.0)  # ten loops of the new program
        changes.append(b.fib.count_after(at))
        out.runs += 1
    out.extra = f"FIB changes after each kill: {changes}"
    out.notes.append(out.extra)


def row_health_kill_unhealthy(b: Bench, runs: int, out: Outcome) -> None:
    """The program dies as the node's backends are cut: the respawned one must withdraw what ExaBGP holds."""
    node = b.bfd_nodes[1]
    try:
        for _ in range(min(runs, 3)):
            old = health_process(node)
            cut = b.fleet.backends_cut_command(cut=True)
            record(
                out,
                b.timed(
                    node,
                    functools.partial(b.at, node, f"kill -KILL {old}; {cut}"),
                    lambda: b.fleet.cut_backends(node, False),
                ),
            )
    finally:
        b.fleet.cut_backends(node, cut=False)


def row_health_hung(b: Bench, runs: int, out: Outcome) -> None:
    """SIGSTOP of ober-health: its watchdog pings stop, systemd kills and restarts exabgp.service."""
    node = b.plain
    for _ in range(runs):
        old = health_process(node)
        try:
            record(out, b.timed(node, functools.partial(b.at, node, f"kill -STOP {old}")))
        finally:
            node.ssh("kill", "-CONT", str(old), check=False)


def row_exabgp_kill(b: Bench, runs: int, out: Outcome) -> None:
    node = b.bfd_nodes[0]
    previous = 0.0
    for _ in range(runs):
        spaced(previous)
        previous = time.time()
        pid = node.main_pid("exabgp.service")
        record(out, b.timed(node, functools.partial(b.at, node, f"kill -KILL {pid}")))


def row_exabgp_hung(b: Bench, runs: int, out: Outcome) -> None:
    """SIGSTOP of ExaBGP: the router's hold timer drops it (bfdd still answers BFD); ober-health finds ExaBGP
    deaf and has systemd restart it (WATCHDOG=trigger)."""
    node = b.bfd_nodes[1]
    for _ in range(runs):
        pid = node.main_pid("exabgp.service")
        try:
            record(out, b.timed(node, functools.partial(b.at, node, f"kill -STOP {pid}")))
        finally:
            node.ssh("kill", "-CONT", str(pid), check=False)


def link(node: NspawnNode, up: bool) -> float:
    at = time.time()
    run("ip", "-n", node.name, "link", "set", "eth0", "up" if up else "down")
    return at


def bfd_ready(b: Bench, node: NspawnNode, out: Outcome) -> None:
    """Before a run on a node with BFD: its BFD sessions Up at the router again. BGP re-establishes before
    BFD does after a failure; a second fault in that gap is caught by the hold timer (2.7 s in a first run of
    this benchmark), so a BFD row's run waits for BFD, and says how long it waited."""
    router = b.fleet.router
    assert isinstance(router, BirdRouter)
    if node is b.plain:
        return
    wanted = {node.host.ipv4, node.host.ipv6}
    waited = wait_for(
        lambda: wanted <= router.bfd_up(), timeout=30, what=f"{node.name}'s BFD sessions Up", interval=0.1
    )
    if waited > 0.2:
        out.notes.append(f"waited {waited:.1f} s for {node.name}'s BFD sessions to be Up before the run")


def row_link_cut(node_of: Callable[[Bench], NspawnNode]) -> Callable[[Bench, int, Outcome], None]:
    def row(b: Bench, runs: int, out: Outcome) -> None:
        node = node_of(b)
        try:
            for _ in range(runs):
                bfd_ready(b, node, out)
                record(out, b.timed(node, lambda: link(node, up=False), lambda: link(node, up=True)))
        finally:
            link(node, up=True)

    return row


def row_frozen(node_of: Callable[[Bench], NspawnNode]) -> Callable[[Bench, int, Outcome], None]:
    def row(b: Bench, runs: int, out: Outcome) -> None:
        node = node_of(b)

        def freeze() -> float:
            at = time.time()
            node.power_cut(drop_link=False)
            return at

        def thaw() -> float:
            at = time.time()
            node.power_restore()
            return at

        try:
            for _ in range(runs):
                bfd_ready(b, node, out)
                record(out, b.timed(node, freeze, thaw))
        finally:
            if node.powered_cut:
                node.power_restore()

    return row


def row_reboot(b: Bench, runs: int, out: Outcome) -> None:
    """One run (a reboot costs ~15 s): `back` from the reboot command to every next hop back."""
    node = b.bfd_nodes[1]
    boots = node.boots

    def reboot() -> float:
        at = time.time()
        node.ssh("systemctl", "reboot", check=False)
        return at

    def booted() -> None:
        wait_for(lambda: node.boots > boots, timeout=90, what=f"{node.name} to reboot")
        node.wait_running(timeout=90)

    record(out, b.timed(node, reboot, booted, back_timeout=120))


def row_router_restart(b: Bench, runs: int, out: Outcome) -> None:
    """BIRD stopped (SIGTERM: it takes its routes out of the kernel) and started again: `gone` is to an empty
    FIB, `back` from BIRD's start to every next hop back (the nodes' ExaBGP reconnects)."""
    router = b.fleet.router
    assert isinstance(router, BirdRouter)
    for _ in range(min(runs, 2)):
        at = time.time()
        b.fleet.supervisor.stop("bird")
        router.control.unlink(missing_ok=True)
        empty = b.fib.wait(b.empty(), at, 15, "the router's FIB empty")
        started = time.time()
        router.start()
        back = b.fib.wait(b.whole(), started, 90, "every next hop back after the router's restart")
        record(out, (empty - at, back - started))


def row_drain(b: Bench, runs: int, out: Outcome) -> None:
    node = b.bfd_nodes[0]
    for _ in range(runs):
        record(
            out,
            b.timed(
                node,
                lambda: b.at(node, f"{OBER} drain --wait --timeout 30", timeout=60),
                lambda: b.at(node, f"{OBER} undrain"),
            ),
        )


def row_reload_keepalive(b: Bench, runs: int, out: Outcome) -> None:
    """6 keep-alive connections through the VIP (spread by ECMP over the nodes); every node's HAProxy reloaded
    (`systemctl reload haproxy`), then one request on each kept connection."""
    keepalive = KeepAliveClient(b.fleet.router_ns, vip_address(VIPS[0]), connections=6)
    failed, sent, closes = 0, 0, 0
    at = time.time()
    try:
        first = keepalive.round()
        if first["failed"]:
            out.notes.append(f"keep-alive: {first['failed']} failed before any reload: {first['errors']}")
        for _ in range(runs):
            for node in b.fleet.nodes.values():
                node.ssh("systemctl", "reload", "haproxy.service")
            time.sleep(0.5)  # clients do not send the instant a reload ends
            result = keepalive.round()
            failed += result["failed"]
            closes += result["closes"]
            sent += 6
            out.runs += 1
            out.notes += result["errors"]
    finally:
        keepalive.close()
    out.extra = (
        f"keep-alive: {failed}/{sent} failed across {runs} reloads of every node ({closes} answered with"
        f" Connection: close); FIB changes: {b.fib.count_after(at)}"
    )
    out.notes.append(out.extra)
    out.gone.append(float(failed))  # the row's figure is the failed keep-alive requests


def row_rolling_redeploy(b: Bench, runs: int, out: Outcome) -> None:
    """A deploy whose change restarts ExaBGP on every node, one node at a time (ober_hold_time 4, then back
    to the inventory's): the operator's command, under the client loop."""
    figures = []
    for index in range(min(runs, 2)):
        data = ("--data", "ober_hold_time=4") if index % 2 == 0 else ()
        at = time.time()
        result = b.fleet.deploy(*data)
        if not result.ok:
            raise RuntimeError(f"rolling re-deploy failed: {result.summary()}\n{result.output[-3000:]}")
        b.wait_whole(60)
        fewest = min(b.fib.fewest(vip, at) for vip in VIPS)
        figures.append(
            f"{result.seconds:.1f}s, fewest next hops {fewest} of {len(b.fleet.nodes)}, changes {b.fib.count_after(at)}"
        )
        out.back.append(result.seconds)
        out.runs += 1
    out.extra = "; ".join(figures)
    out.notes.append(out.extra)


def row_rejected_deploy(b: Bench, runs: int, out: Outcome) -> None:
    """tests/fleet/broken_haproxy_deploy.py: a config `haproxy -c` rejects, through the production staged
    template; the live file and HAProxy stay as they were, no route moves."""
    figures = []
    for _ in range(min(runs, 1)):
        at = time.time()
        result = b.fleet.deploy(deploy_file="tests/fleet/broken_haproxy_deploy.py")
        rejected = not result.ok and "failed validation, the live file is unchanged" in result.output
        figures.append(f"{result.seconds:.1f}s, rejected={rejected}, FIB changes {b.fib.count_after(at)}")
        out.back.append(result.seconds)
        out.runs += 1
    out.extra = "; ".join(figures)
    out.notes.append(out.extra)


def record(out: Outcome, gone_back: tuple[float, float]) -> None:
    gone, back = gone_back
    out.gone.append(gone)
    out.back.append(back)
    out.runs += 1
    print(f"    run {len(out.gone)}: gone {gone * 1000:8.1f} ms   back {back:6.2f} s", flush=True)


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    do: Callable[[Bench, int, Outcome], None]
    runs: int | None = None  # a fixed cap (expensive rows); None: --runs
    goal: str = ""
    met: Callable[[Outcome], bool] | None = None


def max_gone(limit: float) -> Callable[[Outcome], bool]:
    return lambda o: bool(o.gone) and max(o.gone) <= limit


ROWS = [
    Row(
        "haproxy-kill",
        "HAProxy SIGKILL (`systemctl kill -s KILL haproxy`)",
        row_haproxy_kill,
        goal="p99 ≤ 300 ms",
        met=max_gone(0.3),
    ),
    Row("haproxy-stop", "HAProxy hung (SIGSTOP master and workers; CONT to repair)", row_haproxy_stop),
    Row(
        "backends-down",
        "every RGW backend of the node unreachable (prohibit routes; removed to repair)",
        row_backends_down,
    ),
    Row("health-kill", "ober-health SIGKILL on a healthy node (ExaBGP respawns it)", row_health_kill_healthy, runs=3),
    Row(
        "health-kill-unhealthy",
        "ober-health SIGKILL as the node's backends are cut",
        row_health_kill_unhealthy,
        runs=3,
    ),
    Row(
        "health-hung",
        "ober-health hung (SIGSTOP): systemd's watchdog restarts ExaBGP",
        row_health_hung,
        goal="≤ 3 s",
        met=max_gone(3.0),
    ),
    Row("exabgp-kill", "ExaBGP SIGKILL (systemd restarts it)", row_exabgp_kill),
    Row("exabgp-hung", "ExaBGP hung (SIGSTOP): hold timer, then WATCHDOG=trigger", row_exabgp_hung),
    Row(
        "link-cut-bfd",
        "link cut, BFD 50 ms x 3 (eth0 down in the node; up to repair)",
        row_link_cut(lambda b: b.bfd_nodes[0]),
        goal="≤ 200 ms",
        met=max_gone(0.2),
    ),
    Row("link-cut", "link cut, no BFD (hold timer 3 s)", row_link_cut(lambda b: b.plain)),
    Row(
        "frozen-bfd",
        "node frozen (cgroup freezer, carrier up), BFD 50 ms x 3",
        row_frozen(lambda b: b.bfd_nodes[0]),
        goal="≤ 200 ms",
        met=max_gone(0.2),
    ),
    Row("frozen", "node frozen, no BFD (hold timer 3 s)", row_frozen(lambda b: b.plain)),
    Row("reboot", "node reboot (`systemctl reboot`; the stop path drains)", row_reboot, runs=1),
    Row("router-restart", "router restart (BIRD stopped and started; gone = FIB empty)", row_router_restart, runs=2),
    Row(
        "drain",
        "planned drain (`ober drain --wait`; `ober undrain` to repair)",
        row_drain,
        goal="0 failed requests",
        met=lambda o: o.total > 0 and o.failed == 0,
    ),
    Row(
        "reload",
        "HAProxy reload of every node with 6 keep-alive clients",
        row_reload_keepalive,
        runs=5,
        goal="0 failed requests",
        met=lambda o: o.total > 0 and o.failed == 0 and o.gone == [0.0],
    ),
    Row("rolling-redeploy", "rolling re-deploy (ExaBGP restarted node by node)", row_rolling_redeploy, runs=2),
    Row("rejected-deploy", "a deploy pushing a config HAProxy rejects", row_rejected_deploy, runs=1),
]


def spread(values: list[float], unit: str = "ms") -> str:
    """p50/p99 from 10 runs on, min/median/max below (percentiles of 3 runs would pretend)."""
    if not values:
        return "-"
    scale, fmt = (1000.0, "{:.0f}") if unit == "ms" else (1.0, "{:.2f}")
    v = [x * scale for x in values]
    if len(v) >= 10:
        return f"p50 {fmt.format(percentile(v, 50))} / p99 {fmt.format(percentile(v, 99))} {unit}"
    return f"{fmt.format(min(v))} / {fmt.format(statistics.median(v))} / {fmt.format(max(v))} {unit}"


def health_cost(fleet: Fleet, seconds: float) -> str:
    """ober-health's CPU (% of one core) and RSS on every node over `seconds` of serving the client loop."""

    def sample(node: NspawnNode, pid: int) -> tuple[float, int, float]:
        out = node.ssh("sh", "-c", shlex.quote(f"cat /proc/{pid}/stat; grep VmRSS /proc/{pid}/status; date +%s.%N"))
        stat, rss, now = out.stdout.strip().splitlines()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(rss.split()[1]), float(now)

    pids = {name: health_process(node) for name, node in fleet.nodes.items()}
    before = {name: sample(fleet.nodes[name], pid) for name, pid in pids.items()}
    time.sleep(seconds)
    parts = []
    for name, pid in pids.items():
        cpu0, rss0, t0 = before[name]
        cpu1, rss1, t1 = sample(fleet.nodes[name], pid)
        cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
        parts.append(
            f"{name.removeprefix(fleet.prefix)}: CPU {cpu:.1f} %, RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MiB"
        )
    return "; ".join(parts)


def run_row(b: Bench, row: Row, runs: int) -> tuple[Outcome, float]:
    out = Outcome()
    n = row.runs if row.runs is not None else runs
    print(f"--- {row.name}: {row.title} ({n} run{'s' if n != 1 else ''})", flush=True)
    started = time.monotonic()
    stop = client(b.fleet)
    try:
        row.do(b, n, out)
    except Exception as error:  # a row that cannot finish is reported, and the others still run
        out.skipped = f"{type(error).__name__}: {str(error)[:300]}"
        print(f"    not measured: {out.skipped}", flush=True)
    finally:
        loop = stop()
        out.failed, out.total = loop.failed, loop.ok + loop.failed
    if loop.errors:
        out.notes.append("client errors: " + "; ".join(loop.errors[:5]))
    try:
        b.wait_whole(60)
    except Exception as error:
        out.notes.append(f"fleet not whole after the row: {error}")
        repair(b.fleet, out)
    seconds = time.monotonic() - started
    print(f"    client loop: {out.failed}/{out.total} failed;  row {seconds:.0f} s", flush=True)
    for note in out.notes:
        print(f"    {note}", flush=True)
    return out, seconds


def repair(fleet: Fleet, out: Outcome) -> None:
    """What a person would do to a node whose exabgp.service failed: reset-failed and start it."""
    for name, node in fleet.nodes.items():
        state = node.ssh("systemctl", "is-active", "exabgp.service", check=False).stdout.strip()
        if state != "active":
            out.notes.append(f"{name}: exabgp.service {state}; `systemctl reset-failed` + `start` by the benchmark")
            node.ssh("systemctl", "reset-failed", "exabgp.service", check=False)
            node.ssh("systemctl", "start", "exabgp.service", check=False, timeout=60)
    fleet.wait_routes(timeout=60)


def figure(row: Row, out: Outcome) -> Figure:
    if out.skipped:
        return Figure(row.title, "not measured", out.skipped, row.goal, None)
    if row.name in {"reload", "health-kill", "rolling-redeploy", "rejected-deploy"}:
        ober = out.extra
    else:
        ober = f"gone {spread(out.gone)}; back {spread(out.back, 's')}"
    runs = out.runs
    other = f"{out.failed}/{out.total} requests failed ({runs} run{'s' if runs != 1 else ''})"
    return Figure(row.title, ober, other, row.goal, row.met(out) if row.met is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of the cheap rows (default 3)")
    parser.add_argument(
        "--rows", default="", help="comma-separated row names (default: all): " + ",".join(r.name for r in ROWS)
    )
    parser.add_argument("--soak", type=float, default=20.0, help="seconds of ober-health's CPU/RSS sample")
    args = parser.parse_args()
    wanted = [name for name in args.rows.split(",") if name]
    unknown = sorted(set(wanted) - {r.name for r in ROWS})
    if unknown:
        parser.error(f"--rows: unknown {unknown}; rows are {[r.name for r in ROWS]}")
    rows = [r for r in ROWS if not wanted or r.name in wanted]
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ober-failures-") as tmp,
        Fleet(Path(tmp), prefix=unique_prefix("bf"), nodes=3, bfd=True) as fleet,
    ):
        result = fleet.deploy()
        if not result.ok:
            sys.exit(f"first deploy failed: {result.summary()}\n{result.output[-3000:]}")
        router = fleet.router
        assert isinstance(router, BirdRouter)
        router.set_peer_bfd(list(fleet.nodes)[-1], bfd=False)
        fleet.wait_routes(timeout=90)
        ready = time.monotonic() - started
        print(f"fleet up and deployed in {ready:.0f} s ({result.summary()})", flush=True)
        timeline = FibTimeline(fleet.router_ns, list(VIPS)).start()
        try:
            bench = Bench(fleet, timeline)
            stop = client(fleet)
            cost = health_cost(fleet, args.soak)
            loop = stop()
            print(f"--- health: ober-health over {args.soak:.0f} s under the client loop: {cost}", flush=True)
            figures = [
                Figure(
                    f"ober-health's cost, {args.soak:.0f} s, client loop running",
                    cost,
                    f"{loop.failed}/{loop.ok + loop.failed} requests failed",
                )
            ]
            for row in rows:
                out, _ = run_row(bench, row, args.runs)
                figures.append(figure(row, out))
        finally:
            timeline.stop()
    total = time.monotonic() - started
    print()
    print(
        markdown(
            f"Failure table (bench/failures.py --runs {args.runs}; 3 Debian 12 nodes; {total / 60:.1f} min in all)",
            figures,
        )
    )
    print(f"total wall time {total:.0f} s (fleet up and deployed in {ready:.0f} s)")


if __name__ == "__main__":
    main()
