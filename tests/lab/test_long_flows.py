"""Long downloads while another node drains (issue 14, "long flows"): with resilient hashing at the router
every download on the nodes that stay completes; with plain multipath (hash-threshold) some are reset.

Three nodes, one VIP, a client behind the router (its flows are forwarded, and hashed per packet, as at a
site), sixteen paced downloads from distinct source ports. Once every download has its headers (so we know
which node carries it), the first node is drained with the operator's `ober drain --wait`. It is the
router's first next hop: under hash-threshold its leaving shifts the boundary of the next one's share (the
middle one leaving moves nothing of the others), so the plain router's figure is the case a site meets
when any but its last next hop leaves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lab.fastlab import FastLab
from lab.procs import netns_exec
from tests.conftest import record_figure, record_outcome
from tests.lab.conftest import LabFactory

V4 = "203.0.113.10/32"
VIP = "203.0.113.10"
FLOWS = 16
SIZE = 3_000_000  # bytes per download: 6 s at the paced rate, the drain happens in its first seconds
RATE = 500_000
OBER = str(Path(sys.executable).parent / "ober")
ROOT = str(Path(__file__).resolve().parents[2])


def _start_downloads(lab: FastLab) -> tuple[subprocess.Popen[str], list[dict[str, Any]]]:
    argv = [sys.executable, "-m", "lab.longflow", "--vip", VIP, "--flows", str(FLOWS)]
    argv += ["--size", str(SIZE), "--rate", str(RATE), "--timeout", "40"]
    client = subprocess.Popen(netns_exec(lab.client_ns, *argv), stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert client.stdout is not None
    started = json.loads(client.stdout.readline() or "{}").get("started", [])
    assert len(started) == FLOWS and all(f["served_by"] and not f["error"] for f in started), started
    return client, started


def _node_of(flow: dict[str, Any]) -> str:
    return str(flow["served_by"]).split("/")[0]


def _drain(lab: FastLab, node: str) -> tuple[subprocess.CompletedProcess[str], float]:
    config = str(lab.nodes[node].health_config)
    started = time.monotonic()
    result = subprocess.run(
        netns_exec(node, OBER, "--config", config, "drain", "--wait", "--timeout", "30", "--reason", "test"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("ecmp", ["resilient", "multipath"])
def test_draining_a_node_keeps_the_other_nodes_long_downloads(make_lab: LabFactory, ecmp: str) -> None:
    lab = make_lab(nodes=3, vips=(V4,), ecmp=ecmp, client=True)
    client, started = _start_downloads(lab)
    try:
        carried: dict[str, int] = {}
        for flow in started:
            carried[_node_of(flow)] = carried.get(_node_of(flow), 0) + 1
        assert len({flow["port"] for flow in started}) == FLOWS  # distinct flows, as the router hashes them
        victim = next(iter(lab.nodes))
        others = [n for n in lab.nodes if n != victim]
        assert carried.get(victim) and any(carried.get(n) for n in others), f"flows per node: {carried}"
        before = lab.mirror.buckets_of(V4) if lab.mirror else []
        drain, seconds = _drain(lab, victim)
        assert drain.returncode == 0, drain.stdout + drain.stderr
        # the victim's downloads cannot survive the withdraw (their clients' packets now reach another node):
        # the drain lets them go and says so, instead of waiting its whole bound for them
        let_go = [line for line in drain.stdout.splitlines() if line.endswith(": let go")]
        assert len(let_go) == 1 and "no progress for 2s" in let_go[0], drain.stdout
        record_figure(f"ober drain --wait with long downloads ({ecmp} router)", seconds)
        lab.wait_nexthops(V4, lab.node_ips(V4, others))
        if lab.mirror:
            after = lab.mirror.buckets_of(V4)
            leaving = lab.mirror.member_id(lab.nodes[victim].host.ipv4)
            moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b not in (leaving, a)]
            assert len(after) == len(before) > 0 and moved == [], f"surviving members' buckets moved: {moved}"
            assert leaving not in after
            assert lab.mirror.errors == [], lab.mirror.errors
        assert client.stdout is not None
        out, _ = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(timeout=5)
    flows = json.loads(out.strip().splitlines()[-1])["flows"]
    on_others = [f for f in flows if _node_of(f) != victim]
    survived = [f for f in on_others if not f["error"] and f["received"] == f["expected"] == SIZE]
    on_victim = [f for f in flows if _node_of(f) == victim]
    victim_done = sum(1 for f in on_victim if not f["error"] and f["received"] == SIZE)
    record_outcome(
        f"long downloads through a drain ({ecmp} router, 3 nodes, {FLOWS} flows)",
        f"{len(survived)}/{len(on_others)} on the other nodes complete; {victim_done}/{len(on_victim)} on the"
        f" drained node; drain {seconds:.1f}s ({let_go[0].removeprefix('drain: ')})",
    )
    if ecmp == "resilient":
        broken = [(f["port"], f["served_by"], f["received"], f["error"]) for f in on_others if f not in survived]
        assert broken == [], f"downloads on the nodes that stayed broke: {broken}"
