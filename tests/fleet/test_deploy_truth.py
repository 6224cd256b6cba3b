"""The deploy, as an operator runs it from a fresh clone against booted nodes, tells and does the truth.

`pyinfra -y inventories/lab.py deploy.py` from the controller namespace, in a `git clone` of this
repository (no .cache, no .venv), with an index that serves only what an operator's index serves
(ober's own wheel is built by the deploy). Checked where a user would check: the router's FIB, requests
through the VIPs, the files and versions installed on the nodes.

One fleet for the module; the tests run in order, and each leaves the fleet deployed from the clone.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.fleet import ROUTER_IPV4, ROUTER_IPV6, VIPS, ClientResult, Fleet
from lab.nspawn import NspawnNode
from ober_deploy.wheels import BUILD_PREFIX, WheelSet
from tests.conftest import record_figure, record_outcome
from tests.fleet.conftest import FibWatcher, fresh_clone, start_fleet

pytestmark = pytest.mark.fleet

EXABGP = "exabgp.service"
HAPROXY = "haproxy.service"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
HEALTH_TOML = "/etc/ober/health.toml"
EXABGP_CONF = "/etc/ober/exabgp.conf"
MANAGED = (HAPROXY_CFG, HEALTH_TOML, EXABGP_CONF)
BUILDING = "--> building the wheels the nodes install"


@dataclass
class Lab:
    fleet: Fleet
    clone: Path

    def wheel_sets(self) -> list[Path]:
        return sorted(p for p in (self.clone / ".cache" / "wheels").iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def lab(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    clone = fresh_clone(tmp_path_factory.mktemp("operator") / "ober")
    assert not (clone / ".cache").exists() and not (clone / ".venv").exists()
    fleet = start_fleet(tmp_path_factory.mktemp("truth"), checkout=clone)
    yield Lab(fleet, clone)
    fleet.down()
    assert not fleet.leftovers, f"processes outlived the fleet: {fleet.leftovers}"


def sh(node: NspawnNode, command: str) -> str:
    return node.ssh("sh", "-c", f"'{command}'").stdout.strip()


def installed_version(node: NspawnNode) -> str:
    return sh(node, "/opt/ober/venv/bin/ober --version")


def digests(node: NspawnNode) -> dict[str, str]:
    """sha256 of each managed config file on the node, as it is live."""
    lines = node.ssh("sha256sum", *MANAGED).stdout.splitlines()
    return {path: digest for digest, path in (line.split() for line in lines)}


def staged_leftovers(fleet: Fleet) -> dict[str, str]:
    found = {
        name: sh(node, "ls -d /etc/haproxy/*.ober-new /etc/ober/*.ober-new 2>/dev/null || true")
        for name, node in fleet.nodes.items()
    }
    return {name: files for name, files in found.items() if files}


def haproxy_workers(node: NspawnNode) -> set[int]:
    return set(node.children(node.main_pid(HAPROXY)))


@dataclass
class Clients:
    """A request loop through each VIP, and where RGW's logs stood when they started."""

    procs: list[subprocess.Popen[str]]
    marks: dict[str, int]


def start_clients(fleet: Fleet) -> Clients:
    marks = fleet.rgw_marks()
    return Clients([fleet.start_client(vip, duration=600) for vip in VIPS], marks)


def stop_clients(fleet: Fleet, clients: Clients) -> list[tuple[ClientResult, dict[str, int]]]:
    """Each loop's result, with the requests RGW received from each node for that loop."""
    results = [fleet.stop_client(proc) for proc in clients.procs]
    return [(result, fleet.forwarded_since(clients.marks, vip)) for vip, result in zip(VIPS, results, strict=True)]


REHASH_WINDOW = (-0.05, 1.0)  # a reset this close to a next-hop change of its VIP (seconds) is the router's


def rehash_resets(vip: str, errors: list[str], fib: FibWatcher) -> tuple[list[str], list[str]]:
    """(resets the router's ECMP rehash explains, every other failure). When a next hop leaves or returns,
    a router without resilient hashing moves some flows of the *other* nodes too, and the node they land on
    resets them (README, "S3 through the VIPs"; issue 14): nothing the ingress node can prevent. Such a
    reset is one seen within REHASH_WINDOW of a change of that VIP's next hops, seen by the FIB watcher."""
    seen = fib.changes()
    changes = [when for (when, hops), (_, before) in zip(seen[1:], seen, strict=False) if hops[vip] != before[vip]]
    router: list[str] = []
    other: list[str] = []
    for error in errors:
        when, _, what = error.partition(" ")
        near = any(REHASH_WINDOW[0] <= float(when) - change <= REHASH_WINDOW[1] for change in changes)
        (router if what.startswith("ConnectionResetError") and near else other).append(error)
    return router, other


def assert_no_failed_request(
    results: list[tuple[ClientResult, dict[str, int]]], served_by: set[str], fib: FibWatcher | None = None
) -> None:
    """No failed request through any VIP, and every node served. With `fib`, resets at a next-hop change
    (the router's rehash) are reported as an outcome rather than failed: see `rehash_resets`."""
    for vip, (result, forwarded) in zip(VIPS, results, strict=True):
        errors = result.errors
        if fib is not None:
            router, errors = rehash_resets(vip, result.errors, fib)
            record_outcome(
                f"deploy under a request loop, {vip}",
                f"{result.ok + result.failed} requests, {len(router)} reset at a next-hop change (router rehash),"
                f" {len(errors)} other failures",
            )
        unexplained = result.failed - (len(result.errors) - len(errors))  # the client keeps 20 errors at most
        assert unexplained == 0, f"{vip}: {unexplained} of {result.ok + result.failed} failed: {result.errors}"
        served = {name for name, count in forwarded.items() if count}
        assert served == served_by, f"{vip}: forwarded to RGW by {sorted(served)} only ({forwarded})"


def test_first_deploy_from_a_fresh_clone_with_an_empty_wheel_cache_routes_every_vip(lab: Lab) -> None:
    first = lab.fleet.deploys[0]
    assert first.ok, first.output[-3000:]
    building = [line for line in first.output.splitlines() if line.startswith(BUILDING)]
    assert len(building) == 1 and f"from {lab.clone}" in building[0], "built once, by the deploy, from the clone"
    sets = lab.wheel_sets()
    assert [p.name for p in sets if p.name.startswith(BUILD_PREFIX)] == [] and len(sets) == 1
    version = WheelSet.read(sets[0]).version
    for vip in VIPS:
        assert lab.fleet.nexthops(vip) == lab.fleet.node_ips(vip), vip
    for name, node in lab.fleet.nodes.items():
        assert installed_version(node) == f"ober {version}", name
    assert staged_leftovers(lab.fleet) == {}


def test_an_edit_to_ober_health_is_installed_and_run_on_every_node_without_a_failed_request(lab: Lab) -> None:
    fleet = lab.fleet
    marker = f"deploy-truth-{uuid.uuid4().hex[:8]}"
    with (lab.clone / "ober_health" / "__init__.py").open("a") as source:
        source.write(f'\nUPGRADE_MARKER = "{marker}"  # a change an operator deploys\n')
    before = {name: (installed_version(node), node.main_pid(EXABGP)) for name, node in fleet.nodes.items()}
    sets_before = lab.wheel_sets()
    clients = start_clients(fleet)
    try:
        with FibWatcher(fleet) as fib:
            result = fleet.deploy()
    finally:
        results = stop_clients(fleet, clients)
    record_figure("fleet: upgrade deploy (3 nodes, one at a time)", result.seconds)
    assert result.ok, result.output[-4000:]
    built = [path for path in lab.wheel_sets() if path not in sets_before]
    assert len(built) == 1, f"the edit did not make one new wheel set: {built}"
    new = WheelSet.read(built[0]).version
    for name, node in fleet.nodes.items():
        old_version, old_exabgp = before[name]
        assert old_version != f"ober {new}" and installed_version(node) == f"ober {new}", name
        assert sh(node, f"grep -c {marker} /opt/ober/venv/lib/python3*/site-packages/ober_health/__init__.py") == "1"
        running = json.loads(sh(node, "/opt/ober/venv/bin/ober status --json"))
        assert running.get("program") == f"ober-health {new}", f"{name}: the running health program is not new"
        assert node.main_pid(EXABGP) not in (0, old_exabgp), f"{name}: ExaBGP was not restarted"
        assert sh(node, "ls /opt/ober/venvs | wc -l") == "1", f"{name}: the old venv is still there"
        assert f"[{name}] ober_health {old_version.split()[1]} installed, {new} to install" in result.output
        assert f"[{name}] {EXABGP} restarted; installed: {new}" in result.output
    for vip in VIPS:  # one node at a time: never more than one next hop missing
        assert fib.fewest(vip) >= len(fleet.nodes) - 1, f"{vip}: {fib.changes()}"
    assert_no_failed_request(results, set(fleet.nodes), fib)
    fleet.wait_routes(timeout=30)


def test_a_wrong_peer_asn_stops_the_roll_at_the_first_node_and_the_others_keep_their_routes(lab: Lab) -> None:
    fleet = lab.fleet
    before = {name: (digests(node), node.main_pid(EXABGP)) for name, node in fleet.nodes.items()}
    wrong = json.dumps([{"address": ROUTER_IPV4, "asn": 65099}, {"address": ROUTER_IPV6, "asn": 65099}])
    try:
        with FibWatcher(fleet) as fib:
            result = fleet.deploy("--data", f"ober_peers={wrong}")
        assert not result.ok and result.returncode != 0, "a deploy that cut a node off reported success"
        assert len(result.errors) == 1, result.summary()
        first = next(iter(result.errors))
        others = [name for name in fleet.nodes if name != first]
        output = result.output
        assert f"[{first}] {first}: {EXABGP} restarted, but" in output and "the roll stops here" in output, output
        assert ROUTER_IPV4 in output and "bad peer as" in output.lower(), "peer and reason named:\n" + output
        for name in others:
            assert f"[{name}] not restarted: the roll stopped at {first}" in output
            node = fleet.nodes[name]
            assert (digests(node), node.main_pid(EXABGP)) == before[name], f"{name}: touched by a stopped roll"
        assert staged_leftovers(fleet) == {}
        assert fib.missing(others) == [], f"the untouched nodes' routes moved: {fib.changes()}"
        for vip in VIPS:
            assert fleet.nexthops(vip) == fleet.node_ips(vip, others), f"{vip}: {first} should be gone"
    finally:
        restored = fleet.deploy()  # the good inventory again: everything as before
    assert restored.ok, restored.output[-3000:]
    fleet.wait_routes(timeout=60)
    for name, node in fleet.nodes.items():
        assert digests(node) == before[name][0], f"{name}: not back to the deployed files"


def test_hand_edits_are_repaired_without_a_failed_request_and_a_run_after_a_rejected_one_changes_nothing(
    lab: Lab,
) -> None:
    fleet = lab.fleet
    broken, edited, *_ = fleet.nodes.values()
    deployed = {name: digests(node) for name, node in fleet.nodes.items()}
    workers = {name: haproxy_workers(node) for name, node in fleet.nodes.items()}
    exabgp = {name: node.main_pid(EXABGP) for name, node in fleet.nodes.items()}
    sh(broken, f"echo this-keyword-does-not-exist on >> {HAPROXY_CFG}")
    assert broken.ssh("haproxy", "-c", "-f", HAPROXY_CFG, check=False).returncode != 0
    sh(edited, f'sed -i "s/^rise = .*/rise = 30/" {HEALTH_TOML}')
    assert "rise = 30" in sh(edited, f"cat {HEALTH_TOML}")

    clients = start_clients(fleet)
    try:
        result = fleet.deploy()
    finally:
        results = stop_clients(fleet, clients)
    assert result.ok, result.output[-3000:]
    assert set(result.changed) == {broken.name, edited.name}, result.summary()
    for name, node in fleet.nodes.items():
        assert digests(node) == deployed[name], f"{name}: live files not back to the deployed ones"
        reloaded = haproxy_workers(node) != workers[name]
        assert reloaded is (node is broken), f"{name}: HAProxy reloaded={reloaded}"
        restarted = node.main_pid(EXABGP) != exabgp[name]
        assert restarted is (node is edited), f"{name}: ExaBGP restarted={restarted}"
    assert staged_leftovers(fleet) == {}
    assert_no_failed_request(results, set(fleet.nodes))
    fleet.wait_routes(timeout=30)

    # a config HAProxy rejects never goes live; the next regular deploy then has nothing to do
    workers = {name: haproxy_workers(node) for name, node in fleet.nodes.items()}
    rejected = fleet.deploy(deploy_file="tests/fleet/broken_haproxy_deploy.py")
    assert not rejected.ok and "failed validation, the live file is unchanged" in rejected.output
    assert "this-keyword-does-not-exist" in rejected.output, "the operator does not see HAProxy's complaint"
    after = fleet.deploy()
    assert after.ok, after.output[-3000:]
    assert not any(after.changed.values()), f"a deploy after a rejected one changed something: {after.summary()}"
    for name, node in fleet.nodes.items():
        assert digests(node) == deployed[name] and haproxy_workers(node) == workers[name], name
    assert staged_leftovers(fleet) == {}
