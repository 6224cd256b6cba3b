"""The event path (issue 14): HAProxy's death withdraws at once, a reload never does - judged at the
router's kernel FIB, with real HAProxy (master-worker), ExaBGP, ober-health and BIRD.

A reload is what `systemctl reload haproxy` does on a node: SIGUSR2 to the master, which re-executes itself
and replaces its workers. ober-health watches the master with a pidfd and takes a refused connection to its
health port as decisive, so a reload that showed either would withdraw every VIP of the node.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab.fastlab import FastLab
from lab.fibwatch import FibWatch
from lab.procs import env_with, netns_exec, wait_for
from ober_health.statefile import read_state
from tests.conftest import record_figure, record_outcome

V4, WEB, V6 = "203.0.113.10/32", "203.0.113.20/32", "2001:db8:203::10/128"
PREFIXES = (V4, WEB, V6)
RELOADS = 12
REPO = Path(__file__).resolve().parents[2]


def _reload(lab: FastLab, node: str) -> None:
    """SIGUSR2 to the master (the unit's ExecReload), then wait until it reaped the old worker (HAProxy 2.6
    acts on a SIGUSR2 sent before that only at the next one) and ober-health checked the new one twice."""
    haproxy = lab.nodes[node].proc("haproxy")
    reaped = lab.nodes[node].log("haproxy").count("Former worker")
    lab.supervisor.kill(haproxy, signal.SIGUSR2)
    wait_for(lambda: lab.nodes[node].log("haproxy").count("Former worker") > reaped, timeout=10, what="reload")
    loops = read_state(lab.nodes[node].state_file)["loops"]
    wait_for(lambda: read_state(lab.nodes[node].state_file)["loops"] >= loops + 2, timeout=10, what="two checks")


def test_reloads_never_withdraw_and_never_refuse(lab: FastLab) -> None:
    node = next(iter(lab.nodes))
    master = lab.nodes[node].wait_master_watched()
    socket_path = lab.nodes[node].paths.ober_socket  # the stats socket ober-health reads
    probe = subprocess.Popen(
        netns_exec(node, sys.executable, "-m", "lab.connprobe", "--tcp", "127.0.0.1:8404", "--unix", socket_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env_with(PYTHONPATH=str(REPO)),
    )
    try:
        with FibWatch(lab.router_ns, {prefix: lab.node_ips(prefix) for prefix in PREFIXES}) as watch:
            for _ in range(RELOADS):
                _reload(lab, node)
    finally:
        out, _ = probe.communicate(input="", timeout=30)
    counts = json.loads(out)
    shown = {"health port" if target == "127.0.0.1:8404" else "stats socket": n for target, n in counts.items()}
    record_outcome("fast lab: HAProxy reloads under ober-health", f"{RELOADS} reloads, connections: {shown}")
    assert watch.samples > 0 and watch.wrong == [] and watch.changes == [], (watch.wrong[:5], watch.changes[:5])
    log = lab.nodes[node].log("exabgp")
    assert "withdrawn" not in log and "exited" not in log, log[-3000:]
    assert {p: v["withdraws"] for p, v in read_state(lab.nodes[node].state_file)["vips"].items()} == dict.fromkeys(
        PREFIXES, 0
    )
    # nothing refused a connection while the workers were replaced: the fast path had nothing to see. The
    # health port accepted every one; the stats socket may say EAGAIN (its backlog full for a moment while no
    # worker accepts), which is why only the health port's refusal is decisive
    assert counts["127.0.0.1:8404"]["attempts"] > 100 and set(counts["127.0.0.1:8404"]) == {"attempts"}, counts
    assert counts[socket_path]["attempts"] > 100 and "ConnectionRefusedError" not in counts[socket_path], counts
    assert lab.supervisor.procs[lab.nodes[node].proc("haproxy")].poll() is None  # the same master throughout
    assert f"watching HAProxy's master (pid {master})" in log


def test_a_killed_haproxy_is_withdrawn_by_its_masters_exit(lab: FastLab) -> None:
    node = next(iter(lab.nodes))
    others = [n for n in lab.nodes if n != node]
    haproxy = lab.nodes[node].proc("haproxy")
    master = lab.nodes[node].wait_master_watched()
    started = time.monotonic()
    lab.supervisor.signal_group(haproxy, signal.SIGKILL)  # master and workers
    lab.wait_nexthops(V4, lab.node_ips(V4, others), timeout=10)
    record_figure("fast lab: HAProxy SIGKILL -> next hop gone (event path)", time.monotonic() - started)
    for prefix in (WEB, V6):
        lab.wait_nexthops(prefix, lab.node_ips(prefix, others), timeout=10)
    log = lab.nodes[node].log("exabgp")
    assert f"HAProxy's master (pid {master}) exited" in log, log[-3000:]
    # withdrawn on the first sign of death (the exit, or a refused check if one came first), not after `fall`
    assert "2/2 bad checks" not in log, log[-3000:]
    lab.supervisor.procs[haproxy].wait(timeout=5)
    lab.nodes[node].start_haproxy()
    for prefix in PREFIXES:
        lab.wait_nexthops(prefix, lab.node_ips(prefix), timeout=15)
    lab.nodes[node].wait_master_watched()  # the new master, found again
