"""The longest gap between two watchdog pings of ober-health, idle and under load: what a tighter WatchdogSec
must allow (issue 13: a hung health program caught in <= 3 s). Prints figures.

    .venv/bin/python -m bench.watchdoggap [--seconds 60] [--burners 4] [--reload-every 2]

One fast-lab node (real HAProxy, ExaBGP, ober-health, BIRD); ober-health's NOTIFY_SOCKET is a datagram socket
of this process, so every `WATCHDOG=1` it sends is timed here. Two phases of --seconds each: as the machine
is; with --burners busy-looping processes (bounded in time) and an HAProxy reload every --reload-every
seconds; with the burners and HAProxy hung (SIGSTOP: every check waits its timeout, the loop at its bound).
Systemd kills the unit when a gap exceeds WatchdogSec: the maximum is what counts.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.figures import percentile
from lab.fastlab import FastLab
from tests.conftest import unique_prefix

INTERVAL, TIMEOUT = 0.2, 0.5  # the defaults (ober_health.config.HealthConfig)


class Pings:
    """Receives sd_notify datagrams; keeps the arrival times of WATCHDOG=1."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.5)
        self.times: list[float] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if b"WATCHDOG=1" in data.split(b"\n"):
                self.times.append(time.monotonic())

    def gaps(self, since: float, until: float) -> list[float]:
        window = [t for t in self.times if since <= t <= until]
        return [b - a for a, b in itertools.pairwise(window)]

    def close(self) -> None:
        self.stopped = True
        self.thread.join(timeout=2)
        self.sock.close()


def burn(seconds: float) -> subprocess.Popen[bytes]:
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def line(name: str, gaps: list[float]) -> str:
    ms = [1000 * g for g in gaps]
    return (
        f"{name:<26} pings {len(ms) + 1:<5} gap p50 {percentile(ms, 50):6.0f} ms  p99 {percentile(ms, 99):6.0f} ms"
        f"  p99.9 {percentile(ms, 99.9):6.0f} ms  max {max(ms):6.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burners", type=int, default=4)
    parser.add_argument("--reload-every", type=float, default=2.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="ober-bench-"))
    pings = Pings(workdir / "notify.sock")
    os.environ["NOTIFY_SOCKET"] = str(workdir / "notify.sock")  # inherited by ExaBGP, hence ober-health
    try:
        with FastLab(workdir / "lab", prefix=unique_prefix("bw"), nodes=1) as lab:
            node = next(iter(lab.nodes.values()))
            print(f"interval {INTERVAL} s, timeout {TIMEOUT} s: one loop is at most {INTERVAL + 2 * TIMEOUT:.1f} s")
            started = time.monotonic()
            time.sleep(args.seconds)
            idle = pings.gaps(started, time.monotonic())
            print(line("as the machine is", idle), f"(load {os.getloadavg()[0]:.1f})", flush=True)
            burners = [burn(args.seconds) for _ in range(args.burners)]
            started = time.monotonic()
            reloads = 0
            try:
                while time.monotonic() - started < args.seconds:
                    time.sleep(args.reload_every)
                    lab.supervisor.kill(node.proc("haproxy"), signal.SIGUSR2)
                    reloads += 1
            finally:
                for proc in burners:
                    proc.wait(timeout=args.seconds + 10)
            loaded = pings.gaps(started, time.monotonic())
            print(
                line(f"{args.burners} burners + reloads", loaded),
                f"(load {os.getloadavg()[0]:.1f}, {reloads} reloads)",
                flush=True,
            )
            burners = [burn(args.seconds) for _ in range(args.burners)]
            lab.supervisor.signal_group(node.proc("haproxy"), signal.SIGSTOP)
            started = time.monotonic()
            try:
                time.sleep(args.seconds)
            finally:
                lab.supervisor.signal_group(node.proc("haproxy"), signal.SIGCONT)
                for proc in burners:
                    proc.wait(timeout=args.seconds + 10)
            hung = pings.gaps(started, time.monotonic())
            print(line(f"{args.burners} burners + HAProxy hung", hung), f"(load {os.getloadavg()[0]:.1f})", flush=True)
            worst = max(idle + loaded + hung)
            for name, seconds in (
                ("today 4 x (i + 2t)", max(3, round(4 * (INTERVAL + 2 * TIMEOUT)))),
                ("2 x (i + 2t)", 2 * (INTERVAL + 2 * TIMEOUT)),
            ):
                print(f"WatchdogSec {name:<20} {seconds:4.1f} s: {seconds / worst:.1f}x the worst gap seen")
    finally:
        pings.close()


if __name__ == "__main__":
    main()
