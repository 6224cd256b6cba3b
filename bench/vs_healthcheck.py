"""ober-health against ExaBGP's bundled healthcheck (`exabgp healthcheck`), side by side on one fast lab.

    .venv/bin/python -m bench.vs_healthcheck [--runs 3] [--cpu-seconds 20]      # root

One fast lab (BIRD router), three nodes announcing the same VIP (203.0.113.20/32, its own backend be_web,
MED 100 everywhere so that the router spreads it over all three by ECMP), each with a different API
process under its ExaBGP:
  node 1  ober-health, the deploy's defaults (interval 0.2 s, timeout 0.5 s, rise 3, fall 2, event path)
  node 2  `exabgp healthcheck` at its fastest sane settings: --interval 1 --fast-interval 1 --rise 1
          --fall 1 --timeout 1 --withdraw-on-down
  node 3  `exabgp healthcheck` at its defaults (interval 5 s, fast interval 1 s, rise 3, fall 3, timeout 5 s;
          a failing service is announced with MED 1000 instead of withdrawn: the router drops it from ECMP)
The healthcheck's command is what a site would write: `curl -fsS -o /dev/null <HAProxy's /health URL>`.
Scenarios, the three nodes in turn in each run (so that the machine's load falls on all alike), timed from
the signal to the node's next hop gone from the router's kernel FIB (lab.fibwatch.FibReader, 0.5 ms reads):
  kill        SIGKILL of the node's HAProxy (master and workers)
  hang        SIGSTOP of the node's HAProxy
  backend     the VIP's own backend server stopped on every node at once (HAProxy's /health stays 200: its
              monitor fails only when every backend is empty): watched for BACKEND_WINDOW seconds
  cpu         CPU per second of each program in steady state (the healthcheck's curl children included)
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.figures import Figure, markdown, percentile
from lab.fastlab import FastLab
from lab.fastnode import FastNode
from lab.fibwatch import FibReader
from lab.netns import ROUTER_IPV4
from lab.procs import run
from tests.conftest import unique_prefix

VIP = "203.0.113.20/32"
VIP_ENTRY = {"prefix": VIP, "backend": "be_web", "backends": "127.0.0.1:8090", "med": 100}
FASTEST = "--interval 1 --fast-interval 1 --rise 1 --fall 1 --timeout 1 --withdraw-on-down"
PROGRAMS = ("ober-health", "healthcheck fastest", "healthcheck defaults")
OPTIONS = {"healthcheck fastest": FASTEST, "healthcheck defaults": ""}
BACKEND_WINDOW = 10.0  # seconds a backend-down run waits for each node's next hop to go
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def api_process(node: FastNode) -> str | None:
    """ExaBGP's API process for `node`: ober-health on node 1, the healthcheck on nodes 2 and 3 (a script in
    the node's work directory: exabgp.conf's `run` takes no quoted arguments)."""
    index = int(node.name.rsplit("n", 1)[1])
    program = PROGRAMS[index - 1]
    if program == "ober-health":
        return None
    check = f"curl -fsS -o /dev/null {node.paths.haproxy_health_url}"
    script = node.workdir / "healthcheck.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -m exabgp healthcheck --no-syslog --no-ip-setup --neighbor {ROUTER_IPV4}"
        f" --ip {VIP} --cmd {shlex.quote(check)} {OPTIONS[program]}\n"
    )
    script.chmod(0o755)
    return str(script)


def program_pid(lab: FastLab, node: str) -> int:
    """The pid of the node's API process (ober-health or the healthcheck's Python)."""
    for pid in run("ip", "netns", "pids", node).stdout.split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = b" ".join(argv)
        if (b"ober-health" in words and b"exabgp.conf" not in words) or (b"healthcheck" in argv and b"-m" in argv):
            return int(pid)
    raise RuntimeError(f"no health program in {node}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process and of its reaped children (the healthcheck's sh and curl)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def gone_after(lab: FastLab, node: str, fail: Callable[[], None], limit: float = 40.0) -> float | None:
    """Seconds from `fail()` to `node`'s next hop gone from the router's FIB; None if still there at `limit`."""
    ip = lab.nodes[node].host.ipv4
    fib = FibReader(lab.router_ns)
    try:
        fib.nexthops(VIP)
        started = time.monotonic()
        fail()
        while ip in fib.nexthops(VIP):
            if time.monotonic() - started > limit:
                return None
            time.sleep(0.0005)
        return time.monotonic() - started
    finally:
        fib.close()


def all_back(lab: FastLab) -> None:
    lab.wait_nexthops(VIP, lab.node_ips(VIP), timeout=40)


def haproxy_failure(lab: FastLab, node: str, sig: signal.Signals) -> float:
    """One SIGKILL or SIGSTOP of `node`'s HAProxy timed to the FIB, then HAProxy back and every next hop back."""
    proc = lab.nodes[node].proc("haproxy")
    if sig == signal.SIGKILL and node == first(lab):
        lab.nodes[node].wait_master_watched()
    figure = gone_after(lab, node, lambda: lab.supervisor.signal_group(proc, sig))
    if sig == signal.SIGSTOP:
        lab.supervisor.signal_group(proc, signal.SIGCONT)
    else:
        lab.supervisor.procs[proc].wait(timeout=5)
        lab.nodes[node].start_haproxy()
    all_back(lab)
    time.sleep(0.3)
    if figure is None:
        raise TimeoutError(f"{node}'s next hop still in the FIB 40 s after its HAProxy got {sig.name}")
    return figure


def first(lab: FastLab) -> str:
    return next(iter(lab.nodes))


def backend_down(lab: FastLab) -> dict[str, float | None]:
    """be_web's server stopped on every node at once: when does each node's next hop go (None: never)?"""
    ips = {lab.nodes[n].host.ipv4: n for n in lab.nodes}
    gone: dict[str, float | None] = dict.fromkeys(lab.nodes)
    fib = FibReader(lab.router_ns)
    try:
        fib.nexthops(VIP)
        started = time.monotonic()
        for node in lab.nodes.values():
            node.stop_backend("be_web", 0)
        while time.monotonic() - started < BACKEND_WINDOW:
            present = fib.nexthops(VIP)
            for ip, name in ips.items():
                if gone[name] is None and ip not in present:
                    gone[name] = time.monotonic() - started
            time.sleep(0.002)
    finally:
        fib.close()
    for node in lab.nodes.values():
        node.start_backend("be_web", 0)
    all_back(lab)
    return gone


def cpu_per_second(lab: FastLab, seconds: float) -> dict[str, float]:
    """CPU seconds per second of each node's health program over `seconds` of steady checking."""
    pids = {name: program_pid(lab, name) for name in lab.nodes}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


@dataclass
class Results:
    kill: dict[str, list[float]]
    hang: dict[str, list[float]]
    backend: dict[str, list[float | None]]
    cpu: dict[str, float]


def measure(runs: int, cpu_seconds_: float) -> Results:
    workdir = Path(tempfile.mkdtemp(prefix="ober-bench-vs-"))
    with FastLab(workdir, prefix=unique_prefix("bv"), nodes=3, vips=(VIP_ENTRY,), api_process=api_process) as lab:
        names = dict(zip(lab.nodes, PROGRAMS, strict=True))
        kill: dict[str, list[float]] = {p: [] for p in PROGRAMS}
        hang: dict[str, list[float]] = {p: [] for p in PROGRAMS}
        backend: dict[str, list[float | None]] = {p: [] for p in PROGRAMS}
        cpu = {names[node]: value for node, value in cpu_per_second(lab, cpu_seconds_).items()}
        print("cpu  " + "  ".join(f"{p}: {1000 * v:.1f} ms/s" for p, v in cpu.items()), flush=True)
        for index in range(runs):
            for what, sig, figures in (("kill", signal.SIGKILL, kill), ("hang", signal.SIGSTOP, hang)):
                for node, program in names.items():
                    figures[program].append(haproxy_failure(lab, node, sig))
                line = "  ".join(f"{p} {1000 * figures[p][-1]:.0f} ms" for p in PROGRAMS)
                print(f"run {index + 1}  {what}  {line}", flush=True)
        for node, seconds in backend_down(lab).items():
            backend[names[node]].append(seconds)
        print("backend down  " + "  ".join(f"{p}: {when_gone(backend[p][-1])}" for p in PROGRAMS), flush=True)
    return Results(kill, hang, backend, cpu)


def when_gone(value: float | None) -> str:
    return f"never in {BACKEND_WINDOW:g} s" if value is None else f"{value:.2f} s"


def p50_p99(values: list[float]) -> str:
    return f"{1000 * percentile(values, 50):.0f} / {1000 * percentile(values, 99):.0f} ms"


def section(runs: int, cpu_seconds_: float = 20.0) -> list[Figure]:
    """The side-by-side rows for bench.dataplane."""
    r = measure(runs, cpu_seconds_)
    ober, fast, default = PROGRAMS
    rows = []
    for what, values in (("HAProxy killed (SIGKILL)", r.kill), ("HAProxy hung (SIGSTOP)", r.hang)):
        ratio_fast = percentile(values[fast], 50) / percentile(values[ober], 50)
        ratio_default = percentile(values[default], 50) / percentile(values[ober], 50)
        rows.append(
            Figure(
                f"{what} -> router FIB, p50 / p99 ({runs} runs, alternated), vs ExaBGP's healthcheck",
                p50_p99(values[ober]),
                f"healthcheck fastest {p50_p99(values[fast])} ({ratio_fast:.1f}x),"
                f" defaults {p50_p99(values[default])} ({ratio_default:.1f}x)",
            )
        )
    rows.append(
        Figure(
            "a VIP's own backend down (its server stopped; HAProxy's /health stays 200) -> FIB",
            ", ".join(when_gone(v) for v in r.backend[ober]),
            f"healthcheck fastest {', '.join(when_gone(v) for v in r.backend[fast])},"
            f" defaults {', '.join(when_gone(v) for v in r.backend[default])}",
        )
    )
    rows.append(
        Figure(
            f"CPU of the health program, steady ({cpu_seconds_:g} s; the healthcheck's curl children included)",
            f"{100 * r.cpu[ober]:.2f} % of a core (interval 0.2 s)",
            f"healthcheck fastest {100 * r.cpu[fast]:.2f} % (interval 1 s),"
            f" defaults {100 * r.cpu[default]:.2f} % (interval 5 s)",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(markdown("ober-health vs ExaBGP's healthcheck", section(args.runs, args.cpu_seconds)))


if __name__ == "__main__":
    main()
