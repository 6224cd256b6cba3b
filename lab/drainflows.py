"""One drain under long downloads, as the lab test and the benchmark run it: paced downloads from the
client namespace through a VIP (lab.longflow), the operator's `ober drain --wait` on one node once every
download has its headers, and what became of each download.

    lab = FastLab(workdir, nodes=3, vips=("203.0.113.10/32",), ecmp="resilient", client=True).up()
    run = drain_under_downloads(lab, next(iter(lab.nodes)), "203.0.113.10/32")
    run.survived, len(run.on_others)   # downloads on the nodes that stayed: completed / all
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.fastlab import FastLab
from lab.procs import netns_exec

OBER = str(Path(sys.executable).parent / "ober")
ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class DrainRun:
    victim: str
    started: list[dict[str, Any]]  # each download once it had its headers (lab.longflow's `started`)
    flows: list[dict[str, Any]] = field(default_factory=list)  # each download at its end
    drain: subprocess.CompletedProcess[str] | None = None
    drain_seconds: float = 0.0
    buckets_before: list[int] = field(default_factory=list)  # the VIP's resilient group, by bucket index
    buckets_after: list[int] = field(default_factory=list)

    @staticmethod
    def node_of(flow: dict[str, Any]) -> str:
        return str(flow["served_by"]).split("/")[0]

    def carried(self) -> dict[str, int]:
        """Downloads per node when the drain began."""
        counts: dict[str, int] = {}
        for flow in self.started:
            counts[self.node_of(flow)] = counts.get(self.node_of(flow), 0) + 1
        return counts

    @property
    def on_others(self) -> list[dict[str, Any]]:
        return [f for f in self.flows if self.node_of(f) != self.victim]

    @property
    def on_victim(self) -> list[dict[str, Any]]:
        return [f for f in self.flows if self.node_of(f) == self.victim]

    @staticmethod
    def complete(flow: dict[str, Any]) -> bool:
        return not flow["error"] and flow["received"] == flow["expected"] > 0

    @property
    def survived(self) -> int:
        return sum(1 for f in self.on_others if self.complete(f))

    @property
    def broken(self) -> list[tuple[int, str, int, str]]:
        """(source port, served by, bytes received, error) of each download on another node that broke."""
        return [(f["port"], f["served_by"], f["received"], f["error"]) for f in self.on_others if not self.complete(f)]


def drain_under_downloads(
    lab: FastLab, victim: str, prefix: str, flows: int = 16, size: int = 3_000_000, rate: int = 500_000
) -> DrainRun:
    """Start `flows` downloads of `size` bytes at `rate` bytes/s through `prefix`, drain `victim` with
    `ober drain --wait` once all have their headers, wait for every download to end."""
    vip = str(ipaddress.ip_network(prefix).network_address)
    argv = [sys.executable, "-m", "lab.longflow", "--vip", vip, "--flows", str(flows)]
    argv += ["--size", str(size), "--rate", str(rate), "--timeout", str(size / rate * 4 + 10)]
    client = subprocess.Popen(netns_exec(lab.client_ns, *argv), stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert client.stdout is not None
        started = json.loads(client.stdout.readline() or "{}").get("started", [])
        run = DrainRun(victim, started)
        if lab.mirror is not None:
            run.buckets_before = lab.mirror.buckets_of(prefix)
        config = str(lab.nodes[victim].health_config)
        began = time.monotonic()
        run.drain = subprocess.run(
            netns_exec(victim, OBER, "--config", config, "drain", "--wait", "--timeout", "30", "--reason", "lab"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        run.drain_seconds = time.monotonic() - began
        lab.wait_nexthops(prefix, lab.node_ips(prefix, [n for n in lab.nodes if n != victim]))
        if lab.mirror is not None:
            run.buckets_after = lab.mirror.buckets_of(prefix)
        out, _ = client.communicate(timeout=size / rate * 4 + 30)
        run.flows = json.loads(out.strip().splitlines()[-1])["flows"]
        return run
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=5)
