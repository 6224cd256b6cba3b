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

import json

import pytest

from lab.drainflows import drain_under_downloads
from lab.procs import run
from tests.conftest import record_figure, record_outcome
from tests.lab.conftest import LabFactory

V4 = "203.0.113.10/32"
FLOWS = 16
SIZE = 3_000_000  # bytes per download: 6 s at the paced rate, the drain happens in its first seconds


@pytest.mark.parametrize("ecmp", ["resilient", "multipath"])
def test_draining_a_node_keeps_the_other_nodes_long_downloads(make_lab: LabFactory, ecmp: str) -> None:
    lab = make_lab(nodes=3, vips=(V4,), ecmp=ecmp, client=True)
    victim = next(iter(lab.nodes))
    drained = drain_under_downloads(lab, victim, V4, flows=FLOWS, size=SIZE)
    started, carried = drained.started, drained.carried()
    assert len(started) == FLOWS and all(f["served_by"] and not f["error"] for f in started), started
    assert len({flow["port"] for flow in started}) == FLOWS  # distinct flows, as the router hashes them
    assert carried.get(victim) and len(carried) > 1, f"flows per node: {carried}"
    assert drained.drain is not None and drained.drain.returncode == 0, drained.drain
    record_figure(f"ober drain --wait with long downloads ({ecmp} router)", drained.drain_seconds)
    # the victim's downloads cannot survive the withdraw (their clients' packets now reach another node):
    # the drain lets them go and says so, instead of waiting its whole bound for them
    let_go = [line for line in drained.drain.stdout.splitlines() if line.endswith(": let go")]
    assert len(let_go) == 1 and "no progress for 2s" in let_go[0], drained.drain.stdout
    if lab.mirror is not None:
        leaving = lab.mirror.member_id(lab.nodes[victim].host.ipv4)
        before, after = drained.buckets_before, drained.buckets_after
        moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b not in (leaving, a)]
        assert len(after) == len(before) > 0 and moved == [], f"surviving members' buckets moved: {moved}"
        assert leaving in before and leaving not in after
        assert lab.mirror.errors == [], lab.mirror.errors
    victim_done = sum(1 for f in drained.on_victim if drained.complete(f))
    record_outcome(
        f"long downloads through a drain ({ecmp} router, 3 nodes, {FLOWS} flows)",
        f"{drained.survived}/{len(drained.on_others)} on the other nodes complete;"
        f" {victim_done}/{len(drained.on_victim)} on the drained node;"
        f" drain {drained.drain_seconds:.1f}s ({let_go[0].removeprefix('drain: ')})",
    )
    if ecmp == "resilient":
        assert drained.broken == [], f"downloads on the nodes that stayed broke: {drained.broken}"


def test_resilient_router_carries_every_vip_and_follows_a_node_out_and_back(make_lab: LabFactory) -> None:
    """The resilient router is a router: the lab's IPv4 and IPv6 VIPs reach the main table as resilient
    groups of every node, a drained node leaves them and an undrained one comes back."""
    lab = make_lab(nodes=2, ecmp="resilient")
    assert lab.mirror is not None
    for vip in lab.vips:
        family = "-6" if ":" in vip.prefix else "-4"
        route = json.loads(run("ip", "-n", lab.router_ns, family, "-j", "route", "show", "exact", vip.prefix).stdout)
        assert len(route) == 1 and route[0].get("nhid") == lab.mirror.groups[vip.prefix], route
        group = json.loads(run("ip", "-n", lab.router_ns, "-j", "nexthop", "show", "id", str(route[0]["nhid"])).stdout)
        assert group[0]["type"] == "resilient" and group[0]["resilient_args"]["buckets"] == 128, group
    node = lab.nodes[next(iter(lab.nodes))]
    node.maintenance_file.write_text("test\n")
    for vip in lab.vips:
        lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix, [n for n in lab.nodes if n != node.name]))
    node.maintenance_file.unlink()
    for vip in lab.vips:
        lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix))
    assert lab.mirror.errors == [], lab.mirror.errors
