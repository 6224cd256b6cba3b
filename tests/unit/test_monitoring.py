"""monitoring/: the alert rules load and fire (promtool, from Debian's prometheus package), and the dashboard
and the rules query only metrics that exist: ober-health's as it renders them, HAProxy's as a real HAProxy's
exporter serves them.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from lab.procs import wait_for
from ober_health.metrics import render
from tests.unit.test_program import V4, Harness

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULES = MONITORING / "ober-alerts.yml"
RULE_TESTS = MONITORING / "ober-alerts.test.yml"
DASHBOARD = MONITORING / "ober-dashboard.json"
_NAME = re.compile(r"\b((?:ober|haproxy)_[a-z0-9_]+)\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool missing: scripts/setup installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=MONITORING, check=False)


def test_alert_rules_load() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_each_alert_fires_on_its_case() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = set(re.findall(r"- alert: (\w+)", RULES.read_text()))
    assert tested == alerts, f"alerts without a test case: {sorted(alerts - tested)}"


def dashboard_queries() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    assert data["uid"] and data["panels"], "a Grafana dashboard with panels"
    queries = [target["expr"] for panel in data["panels"] for target in panel["targets"]]
    assert all(queries)
    return queries


def rule_queries() -> list[str]:
    return re.findall(r"^\s+expr: (.+)$", RULES.read_text(), re.M)


def ober_names(tmp_path: Path) -> set[str]:
    """Sample names ober-health's /metrics serves (a running program with a failing VIP and a certificate)."""
    h = Harness(tmp_path)
    h.run(2.0)
    h.ok[V4] = False
    h.run(1.0)
    text = render(h.state(), [("/etc/ober/certs/s3.pem", 1.9e9)]).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if not line.startswith("#")}


def haproxy_names(tmp_path: Path) -> set[str]:
    """Sample names a real HAProxy's prometheus-exporter serves for an S3 frontend and an RGW backend."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 1s\n"
        f"frontend s3\n    bind 127.0.0.1:{port}\n"
        "    http-request use-service prometheus-exporter if { path /metrics }\n    default_backend be_rgw\n"
        "backend be_rgw\n    server rgw1 127.0.0.1:9 check\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        text: list[str] = []

        def scraped() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    text.append(response.read().decode())
            except OSError:
                return False
            return True

        wait_for(scraped, timeout=20, what="HAProxy's exporter to answer", interval=0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {line.split("{")[0].split(" ")[0] for line in text[-1].splitlines() if not line.startswith("#")}


def test_dashboard_and_rules_query_only_metrics_that_exist(tmp_path: Path) -> None:
    started = time.monotonic()
    exported = ober_names(tmp_path) | haproxy_names(tmp_path)
    assert "haproxy_backend_active_servers" in exported and "ober_vip_announced" in exported
    queried = {name for query in dashboard_queries() + rule_queries() for name in _NAME.findall(query)}
    assert {"ober_vip_announced", "ober_bgp_session_up", "haproxy_backend_active_servers"} <= queried
    assert queried - exported == set(), f"queried but exported by neither: {sorted(queried - exported)}"
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("name", ["ober_check_failures_total", "ober_certificate_expiry_timestamp_seconds"])
def test_the_dashboard_shows_failures_by_cause_and_certificate_days(name: str) -> None:
    assert any(name in query for query in dashboard_queries())
