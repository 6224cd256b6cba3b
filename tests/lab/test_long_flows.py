"""Long downloads while another node drains (issue 14, "long flows"): with resilient hashing at the router
every download on the nodes that stay completes; with plain multipath (hash-threshold) some are reset.

Three nodes, one VIP, a client behind the router (its flows are forwarded, and hashed per packet, as at a
site), sixteen paced downloads from distinct source ports (lab.drainflows). Once every download has its
headers (so we know which node carries it), the first node is drained with the operator's `ober drain
--wait`. It is the router's first next hop: under hash-threshold its leaving shifts the boundary of the next
one's share (the middle one leaving moves nothing of the others), so the plain router's figure is the case
a site meets when any but its last next hop leaves.
"""

from __future__ import annotations

import pytest

from lab.drainflows import drain_under_downloads
from tests.conftest import record_figure, record_outcome
from tests.lab.conftest import LabFactory

V4 = "203.0.113.10/32"
FLOWS = 16
SIZE = 3_000_000  # bytes per download: 6 s at the paced rate, the drain happens in its first seconds


@pytest.mark.parametrize("ecmp", ["resilient", "multipath"])
def test_draining_a_node_keeps_the_other_nodes_long_downloads(make_lab: LabFactory, ecmp: str) -> None:
    lab = make_lab(nodes=3, vips=(V4,), ecmp=ecmp, client=True)
    victim = next(iter(lab.nodes))
    run = drain_under_downloads(lab, victim, V4, flows=FLOWS, size=SIZE)
    started, carried = run.started, run.carried()
    assert len(started) == FLOWS and all(f["served_by"] and not f["error"] for f in started), started
    assert len({flow["port"] for flow in started}) == FLOWS  # distinct flows, as the router hashes them
    assert carried.get(victim) and len(carried) > 1, f"flows per node: {carried}"
    assert run.drain is not None and run.drain.returncode == 0, run.drain
    record_figure(f"ober drain --wait with long downloads ({ecmp} router)", run.drain_seconds)
    # the victim's downloads cannot survive the withdraw (their clients' packets now reach another node):
    # the drain lets them go and says so, instead of waiting its whole bound for them
    let_go = [line for line in run.drain.stdout.splitlines() if line.endswith(": let go")]
    assert len(let_go) == 1 and "no progress for 2s" in let_go[0], run.drain.stdout
    if lab.mirror is not None:
        leaving = lab.mirror.member_id(lab.nodes[victim].host.ipv4)
        before, after = run.buckets_before, run.buckets_after
        moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b not in (leaving, a)]
        assert len(after) == len(before) > 0 and moved == [], f"surviving members' buckets moved: {moved}"
        assert leaving in before and leaving not in after
        assert lab.mirror.errors == [], lab.mirror.errors
    victim_done = sum(1 for f in run.on_victim if run.complete(f))
    record_outcome(
        f"long downloads through a drain ({ecmp} router, 3 nodes, {FLOWS} flows)",
        f"{run.survived}/{len(run.on_others)} on the other nodes complete; {victim_done}/{len(run.on_victim)} on"
        f" the drained node; drain {run.drain_seconds:.1f}s ({let_go[0].removeprefix('drain: ')})",
    )
    if ecmp == "resilient":
        assert run.broken == [], f"downloads on the nodes that stayed broke: {run.broken}"
