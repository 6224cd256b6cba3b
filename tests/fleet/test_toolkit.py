"""The node's operator toolkit (issue 11) on a booted node deployed by pyinfra, run as an operator runs it:
`ober` from PATH over SSH, against the real units, HAProxy, ExaBGP, a BIRD router and the RGW gateways.

One fleet of one node for the module (a boot and deploy cost about a minute); each test puts back what it
broke and waits for the routes before it ends.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from lab.fleet import VIPS, Fleet, vip_address
from lab.netns import ROUTER_IPV4, ROUTER_IPV6
from lab.nspawn import NspawnNode
from lab.procs import netns_exec, wait_for
from tests.conftest import record_figure
from tests.fleet.conftest import EXABGP, start_fleet, stop_fleet
from tests.unit.test_metrics import parse, value

pytestmark = pytest.mark.fleet

BUNDLE = "/etc/haproxy/certs/s3.lab.example.pem"
PUBLIC_COPY = "/etc/ober/certs/s3.lab.example.pem"  # its certificate without the key (ober-health reads it)
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
METRICS_PORT = 9101  # inventories/lab.py: ober_metrics_bind, allowed from the controller only


@pytest.fixture(scope="module")
def fleet(fleet_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("toolkit"), nodes=1)
    yield fleet
    stop_fleet(fleet)


@pytest.fixture
def node(fleet: Fleet) -> Iterator[NspawnNode]:
    """The node, healthy before the test and again after it (routes at the router)."""
    node = next(iter(fleet.nodes.values()))
    yield node
    node.ssh("systemctl", "start", "haproxy.service", EXABGP, check=False)
    wait_for(lambda: ober(node, "status").returncode == 0, timeout=60, what="ober status 0 again", interval=0.5)
    fleet.wait_routes(timeout=30)


def ober(node: NspawnNode, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`ober ARGS` as an operator types it: found on PATH of a root login over SSH."""
    return node.ssh("ober", *args, check=False, timeout=timeout)


def doctor(node: NspawnNode) -> tuple[int, list[dict[str, str]], str]:
    """(exit code, the checks of `ober doctor --json`, the human output of `ober doctor`)."""
    data = json.loads(ober(node, "doctor", "--json").stdout)
    human = ober(node, "doctor")
    assert human.returncode == data["exit"], human.stdout
    return human.returncode, data["checks"], human.stdout


def failed(checks: list[dict[str, str]]) -> list[str]:
    return [f"{c['group']}: {c['what']}" for c in checks if c["status"] == "fail"]


def test_ober_is_on_path_with_the_installed_version_and_help_for_each_command(node: NspawnNode) -> None:
    version = ober(node, "--version")
    assert version.returncode == 0, version.stderr
    installed = node.ssh("cat", "/opt/ober/venv/.ober-installed").stdout.strip()  # the deploy's marker
    assert "+" in installed and version.stdout.strip() == f"ober {installed}", version.stdout
    target = node.ssh("readlink", "-f", "/usr/local/bin/ober").stdout.strip()
    assert target.startswith("/opt/ober/venvs/") and target.endswith("/bin/ober"), target
    helptext = ober(node, "--help").stdout
    for command in ("status", "drain", "undrain", "doctor", "logs", "test-bgp"):
        assert command in helptext, helptext


def test_doctor_on_a_healthy_node_passes_and_warns_that_there_is_no_hardware_watchdog(node: NspawnNode) -> None:
    started = time.monotonic()
    code, checks, human = doctor(node)
    record_figure("fleet: ober doctor --json + ober doctor over SSH", time.monotonic() - started)
    assert code == 0, human
    groups = [c["group"] for c in checks]
    for group in ("node", "kernel", "haproxy", "certificates", "backends", "health program", "bgp"):
        assert group in groups, human
    watchdog = next(c for c in checks if c["what"].startswith("hardware watchdog"))
    assert watchdog["status"] == "warn" and "RuntimeWatchdogSec" in watchdog["hint"], watchdog
    assert "WARN  hardware watchdog: no /dev/watchdog" in human and "hint: load the board's watchdog" in human
    assert any(c["what"].startswith("backend be_rgw") and "2/2 server(s) UP" in c["what"] for c in checks), human
    assert any(c["what"].startswith("haproxy -c") and c["status"] == "pass" for c in checks), human


def test_doctor_fails_without_a_hardware_watchdog_where_the_inventory_requires_one(node: NspawnNode) -> None:
    """The lab's inventory says its nodes have none (ober_hardware_watchdog = False); production's default
    requires one. The same node, with health.toml as the default would write it."""
    swap = "s/^hardware_watchdog = false$/hardware_watchdog = true/"
    node.ssh("sh", "-c", f"'sed \"{swap}\" /etc/ober/health.toml > /run/ober-wd.toml'")
    try:
        assert "hardware_watchdog = true" in node.ssh("cat", "/run/ober-wd.toml").stdout
        result = ober(node, "--config", "/run/ober-wd.toml", "doctor", "--json")
        checks = json.loads(result.stdout)["checks"]
    finally:
        node.ssh("rm", "-f", "/run/ober-wd.toml", check=False)
    assert result.returncode == 1
    # (the health program's check looks for an ober-health running with this --config: none does, which is
    # this test's doing; the node's prerequisites are what it is about)
    node_failures = [line for line in failed(checks) if line.startswith("node: ")]
    assert node_failures == ["node: hardware watchdog: no /dev/watchdog: a node whose kernel hangs is not reset"]
    watchdog = next(c for c in checks if c["what"].startswith("hardware watchdog"))
    assert "load the board's watchdog driver" in watchdog["hint"] and "RuntimeWatchdogSec" in watchdog["hint"]


def test_status_shows_backends_up_of_total_and_the_client_sessions_haproxy_counts(
    fleet: Fleet, node: NspawnNode
) -> None:
    host = vip_address(VIPS[0])
    hold = (
        "import socket, sys, time; s = socket.create_connection((sys.argv[1], 80));"
        " print('open', flush=True); time.sleep(20)"
    )
    client = subprocess.Popen(
        netns_exec(fleet.router_ns, "python3", "-c", hold, host), stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "open"

        def one_session() -> bool:
            data = json.loads(ober(node, "status", "--json").stdout)
            return bool(data["haproxy"]["client_sessions"] == 1)

        wait_for(one_session, timeout=10, what="ober status to count the open client connection", interval=0.3)
        human = ober(node, "status").stdout
    finally:
        client.kill()
        client.wait(timeout=10)
    header = next(line for line in human.splitlines() if line.startswith("VIP"))
    assert "UP/DOWN" not in header and "BACKEND UP/TOTAL" in header and "ROUTE" in header, human
    for vip in VIPS:
        row = next(line for line in human.splitlines() if line.startswith(vip))
        assert "be_rgw 2/2" in row and "announced" in row, human
    assert "HAProxy: 1 client session(s) now (frontend s3 1)" in human, human


def test_backends_down_doctor_points_at_the_rgws_not_at_haproxy(fleet: Fleet, node: NspawnNode) -> None:
    fleet.cut_backends(node, cut=True)
    try:
        wait_for(lambda: ober(node, "status").returncode == 1, timeout=15, what="VIPs withdrawn", interval=0.3)
        code, checks, human = doctor(node)
        status = ober(node, "status").stdout
    finally:
        fleet.cut_backends(node, cut=False)
    assert code == 1, human
    backend = next(c for c in checks if c["group"] == "backends")
    assert backend["status"] == "fail" and "0/2 server(s) UP" in backend["what"], human
    assert "HAProxy is fine" in backend["hint"] and "radosgw" in backend["hint"], backend
    assert len(backend["details"]) == 2 and all(": DOWN, last check L4" in d for d in backend["details"]), backend
    assert not [c for c in checks if c["group"] == "haproxy" and c["status"] == "fail"], human
    assert "be_rgw 0/2" in status, status


def test_a_broken_haproxy_cfg_shows_haproxys_own_words(node: NspawnNode) -> None:
    node.ssh("cp", "-p", HAPROXY_CFG, "/root/haproxy.cfg.good")
    node.ssh("sh", "-c", f"'echo \"    use_backend nowhere\" >> {HAPROXY_CFG}'")
    try:
        code, checks, human = doctor(node)
    finally:
        node.ssh("mv", "-f", "/root/haproxy.cfg.good", HAPROXY_CFG)
    assert code == 1 and failed(checks) == [f"haproxy: haproxy -c -f {HAPROXY_CFG}: rejected (exit 1)"], human
    assert "unable to find required use_backend: 'nowhere'" in human, human  # HAProxy 2.6's ALERT, shown
    assert "keeps running its last good config" in human


def test_a_missing_and_an_expired_certificate_are_named(node: NspawnNode) -> None:
    node.ssh("mv", BUNDLE, "/root/bundle.good")
    try:
        code, checks, human = doctor(node)
        assert code == 1 and any("no certificate in /etc/haproxy/certs/" in f for f in failed(checks)), human
        expired = (
            "'cd /root && openssl req -newkey rsa:2048 -nodes -keyout k.pem -out r.csr -subj /CN=s3.lab.example"
            " && openssl x509 -req -in r.csr -key k.pem -out c.pem -days -1"
            f" && cat c.pem k.pem > {BUNDLE} && chmod 600 {BUNDLE}'"
        )
        node.ssh("sh", "-c", expired, timeout=60)
        code, checks, human = doctor(node)
        [failure] = failed(checks)
        assert code == 1 and failure.startswith(f"certificates: {BUNDLE}: the certificate has expired (on "), human
        assert "renew it" in human
    finally:
        node.ssh("mv", "-f", "/root/bundle.good", BUNDLE)


def test_stopped_haproxy_is_one_failure_and_status_says_the_routes_are_gone(fleet: Fleet, node: NspawnNode) -> None:
    started = time.monotonic()
    node.ssh("systemctl", "stop", "haproxy.service", timeout=90)  # exabgp.service is bound to it: drains, stops
    record_figure("fleet: systemctl stop haproxy (ExaBGP drains first)", time.monotonic() - started)
    for vip in VIPS:
        assert fleet.nexthops(vip) == set(), f"{vip} still routed"
    code, checks, human = doctor(node)
    assert code == 1 and failed(checks) == ["haproxy: HAProxy is not running"], human
    assert "systemctl start haproxy.service" in human
    status = ober(node, "status")
    assert status.returncode == 2, status.stdout
    assert "routes: none from this node: ExaBGP is not running" in status.stdout, status.stdout
    assert "stopped cleanly" in status.stdout and "keeps" not in status.stdout, status.stdout


def test_logs_by_service_and_exabgp_starts_without_noise(fleet: Fleet, node: NspawnNode) -> None:
    since = node.ssh("date", "+%s").stdout.strip()
    node.ssh("systemctl", "restart", EXABGP, timeout=90)
    wait_for(lambda: ober(node, "status").returncode == 0, timeout=60, what="ober status 0", interval=0.5)
    fleet.wait_routes(timeout=30)
    start = node.ssh("journalctl", "-u", EXABGP, "-o", "cat", "--no-pager", f"--since=@{since}").stdout
    assert "ober-health[" in start and "announced" in start, start[-3000:]
    for noise in ("environment file missing", "not configured on neighbor"):
        assert noise not in start, f"ExaBGP still logs {noise!r} at start:\n{start[-3000:]}"
    health = ober(node, "logs", "--service", "health", "-n", "200", "--since", f"@{since}")
    bgp = ober(node, "logs", "--service", "bgp", "-n", "200", "--since", f"@{since}")
    haproxy = ober(node, "logs", "--service", "haproxy", "-n", "50")
    assert health.returncode == bgp.returncode == haproxy.returncode == 0, health.stderr + bgp.stderr
    health_lines = [line for line in health.stdout.splitlines() if not line.startswith("--")]
    assert health_lines and all("ober-health[" in line for line in health_lines), health.stdout[-2000:]
    assert "ober-health[" not in bgp.stdout and "exabgp" in bgp.stdout, bgp.stdout[-2000:]
    assert "haproxy" in haproxy.stdout.lower() and "ober-health[" not in haproxy.stdout, haproxy.stdout[-2000:]


def scrape(namespace: str, url: str) -> tuple[int, str]:
    """(HTTP status, body) of a GET from another namespace, as a site's Prometheus would fetch it; 0: no answer."""
    argv = ["curl", "-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", url]
    result = subprocess.run(netns_exec(namespace, *argv), capture_output=True, text=True, timeout=30, check=False)
    body, _, code = result.stdout.rpartition("\n")
    return int(code) if code.isdigit() else 0, body


def test_metrics_scraped_from_outside_by_an_allowed_source_and_refused_to_another(
    fleet: Fleet, node: NspawnNode
) -> None:
    base = f"http://{node.host.ipv4}:{METRICS_PORT}"
    started = time.monotonic()
    code, exporter = scrape(fleet.controller, f"{base}/metrics")
    record_figure("fleet: HAProxy's /metrics scraped from the controller", time.monotonic() - started)
    assert code == 200, exporter[-2000:]
    assert 'haproxy_backend_active_servers{proxy="be_rgw"} 2' in exporter, exporter[-2000:]
    code, health = scrape(fleet.controller, f"{base}/metrics/health")
    assert code == 200, health[-2000:]
    _, samples = parse(health)
    for vip in VIPS:
        assert value(samples, "ober_vip_announced", vip=vip) == 1, health
    for peer in (ROUTER_IPV4, ROUTER_IPV6):
        assert value(samples, "ober_bgp_session_up", peer=peer, asn="65000") == 1, health
    expiry = value(samples, "ober_certificate_expiry_timestamp_seconds", path=PUBLIC_COPY)
    assert expiry > time.time() + 14 * 86400, health  # the lab CA's certificate: the alert would not fire
    assert value(samples, "ober_check_duration_seconds_count") >= 1, health
    # the router's namespace is not in ober_metrics_allow: refused, whatever it asks
    for path in ("/metrics", "/metrics/health", "/state"):
        code, body = scrape(fleet.router_ns, f"{base}{path}")
        assert code == 403, f"{path} from the router: {code} {body[:200]}"
    code, body = scrape(fleet.controller, f"{base}/state")  # an allowed source gets the metrics paths only
    assert code == 403, body[:200]
