"""The fast lab itself: what a user of ober sees at the router, with real HAProxy, ExaBGP and BIRD/FRR."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from lab.fastlab import FastLab
from lab.procs import run
from tests.conftest import record_figure, unique_prefix
from tests.lab.conftest import LabFactory


def test_every_vip_has_one_ecmp_next_hop_per_node(lab: FastLab) -> None:
    for vip in lab.vips:
        assert lab.nexthops(vip.prefix) == lab.node_ips(vip.prefix), vip.prefix
    fib = run("ip", "-n", lab.router_ns, "route", "show", "203.0.113.10/32").stdout
    assert fib.count("nexthop via") == 2, fib


def test_requests_through_each_vip_reach_every_node(lab: FastLab) -> None:
    for vip in lab.vips:
        served_by = set()
        for _ in range(30):
            ok, body = lab.request(vip)
            assert ok, f"request to {vip.prefix} failed: {body}"
            served_by.add(body.split("/")[0])
        assert served_by == set(lab.nodes), f"{vip.prefix} served only by {served_by}"


def test_haproxy_killed_takes_the_nodes_next_hops_away(lab: FastLab) -> None:
    node = lab.nodes[next(iter(lab.nodes))]
    other = [n for n in lab.nodes if n != node.name]
    started = time.monotonic()
    lab.supervisor.kill(node.proc("haproxy"), signal.SIGKILL)
    for vip in lab.vips:
        lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix, other))
    record_figure("HAProxy SIGKILL -> node's next hops gone", time.monotonic() - started)
    for vip in lab.vips:
        ok, body = lab.request(vip)
        assert ok and body.startswith(other[0]), f"{vip.prefix}: {body}"
    node.start_haproxy()
    for vip in lab.vips:
        lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix))


def test_frr_router_gets_the_same_ecmp_routes(make_lab: LabFactory) -> None:
    lab = make_lab(router="frr")
    for vip in lab.vips:
        assert lab.nexthops(vip.prefix) == lab.node_ips(vip.prefix), vip.prefix
    lab.supervisor.kill(f"{lab.network.prefix}n2-haproxy", signal.SIGKILL)
    lab.wait_nexthops("203.0.113.10/32", lab.node_ips("203.0.113.10/32", [f"{lab.network.prefix}n1"]))


def test_teardown_leaves_no_namespace_and_no_process(make_lab: LabFactory) -> None:
    lab = make_lab(nodes=1)
    pids = [p.pid for p in lab.supervisor.procs.values()]
    names = list(lab.network.created)
    lab.down()
    existing = run("ip", "netns", "list").stdout
    assert not [n for n in names if n in existing.split()], existing
    for pid in pids:
        assert run("ps", "-o", "stat=", "-p", str(pid), check=False).stdout.strip() in ("", "Z")


def test_failed_bring_up_cleans_up_what_it_made(tmp_path: Path) -> None:
    prefix = unique_prefix("b")
    lab = FastLab(tmp_path, prefix=prefix, router="no-such-router")
    with pytest.raises(ValueError, match="no-such-router"):
        lab.up()
    assert not lab.network.created
    assert prefix not in run("ip", "netns", "list").stdout
