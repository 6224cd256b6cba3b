"""ober-health's Prometheus metrics: the exposition parsed back (a small parser of format 0.0.4 and promtool's
own linter), and what each metric says as the decider runs (the in-process harness of test_program).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ober_health.checks import FAILURE_CODES
from ober_health.endpoint import StatusEndpoint
from ober_health.metrics import CONTENT_TYPE, DurationHistogram, certificate_expiries, render
from ober_health.statefile import validate_state
from tests.conftest import record_figure
from tests.unit.test_program import FALL, INTERVAL, PEER_V4, PEER_V6, RISE, V4, V6, Harness

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(type of each family, value of each sample) of an exposition; fails on any line the format forbids:
    a sample before its family's TYPE, a family declared twice, a label value escaped wrongly."""
    types: dict[str, str] = {}
    samples: Samples = {}
    assert text.endswith("\n"), "the exposition ends with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, f"{name} declared twice"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name}: sample before its TYPE line"
        labels: list[tuple[str, str]] = []
        rest = label_text or ""
        while rest:
            label = _LABEL.match(rest)
            assert label, f"bad labels in {line!r}"
            raw = re.sub(r"\\.", lambda m: _UNESCAPE[m.group()], label[2])
            labels.append((label[1], raw))
            rest = rest[label.end() :]
        key = (name, frozenset(labels))
        assert key not in samples, f"{line}: sample twice"
        samples[key] = float(value)
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def promtool_lint(exposition: bytes) -> None:
    """promtool's own parser and linter (Debian's prometheus package; scripts/setup installs it)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/setup installs Debian's prometheus package"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_a_running_program_s_metrics_say_what_exabgp_holds_and_why_checks_failed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(INTERVAL * RISE - 0.05)  # rise checks: announced, ExaBGP has not answered yet
    state = validate_state(json.loads(h.published[-1]), "published")
    assert state["vips"][V4]["state"] == "announced" and state["vips"][V4]["acked"] is None
    _, samples = parse(render(state).decode())
    assert value(samples, "ober_vip_announced", vip=V4) == 0, "intent is not an announcement: not acked yet"
    h.run(2.0)  # acked, and a probe read ExaBGP's adj-rib-out
    types, samples = parse(render(h.state()).decode())
    assert value(samples, "ober_vip_announced", vip=V4) == value(samples, "ober_vip_announced", vip=V6) == 1
    assert value(samples, "ober_vip_transitions_total", vip=V4) == 1
    assert value(samples, "ober_bgp_session_up", peer=PEER_V4, asn="65000") == 1
    assert value(samples, "ober_bgp_session_up", peer=PEER_V6, asn="65000") == 1
    assert types["ober_check_duration_seconds"] == "histogram"
    loops = value(samples, "ober_health_loops_total")
    assert value(samples, "ober_check_duration_seconds_count") == loops > RISE
    assert value(samples, "ober_check_duration_seconds_sum") == pytest.approx(loops * h.check_seconds)
    assert value(samples, "ober_check_duration_seconds_bucket", le="0.005") == 0  # rounds took 10 ms
    assert value(samples, "ober_check_duration_seconds_bucket", le="0.01") == loops
    assert value(samples, "ober_check_duration_seconds_bucket", le="+Inf") == loops
    assert not [key for key in samples if key[0] == "ober_check_failures_total"]

    h.ok[V4] = False
    h.run(INTERVAL * FALL + 1.5)
    _, samples = parse(render(h.state()).decode())
    assert value(samples, "ober_vip_announced", vip=V4) == 0 and value(samples, "ober_vip_announced", vip=V6) == 1
    assert value(samples, "ober_vip_transitions_total", vip=V4) == 2
    failures = value(samples, "ober_check_failures_total", vip=V4, reason="haproxy_status")
    assert failures == h.state()["vips"][V4]["bad_streak"] >= FALL
    assert ("ober_check_failures_total", frozenset({("vip", V6), ("reason", "haproxy_status")})) not in samples

    h.exabgp.up.discard(PEER_V6)
    h.run(1.5)
    _, samples = parse(render(h.state()).decode())
    assert value(samples, "ober_bgp_session_up", peer=PEER_V6, asn="65000") == 0
    promtool_lint(render(h.state()))


def test_label_values_are_escaped_and_parse_back(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(1.0)
    odd = 'a"quoted\\path\nwith a newline'
    exposition = render(h.state(), [(odd, 1_900_000_000.0), ("/etc/ober/certs/s3.pem", 1_800_000_000.5)])
    assert b'path="a\\"quoted\\\\path\\nwith a newline"' in exposition
    _, samples = parse(exposition.decode())
    assert value(samples, "ober_certificate_expiry_timestamp_seconds", path=odd) == 1_900_000_000
    assert value(samples, "ober_certificate_expiry_timestamp_seconds", path="/etc/ober/certs/s3.pem") == 1.8e9 + 0.5
    assert value(samples, "ober_build_info", version=h.state()["program"].split()[-1]) == 1
    promtool_lint(exposition)


def test_histogram_buckets_take_a_value_on_their_bound_and_are_cumulative() -> None:
    histogram = DurationHistogram()
    for seconds in (0.001, 0.0011, 0.3, 60.0):
        histogram.observe(seconds)
    times = histogram.as_state()
    assert times["count"] == 4 and times["sum"] == pytest.approx(60.3021) and times["last"] == 60.0
    assert times["buckets"][0] == 1 and times["buckets"][1] == 1 and times["buckets"][-1] == 1  # le=0.001, +Inf


def test_failure_codes_are_short_machine_words() -> None:
    for code in FAILURE_CODES:
        assert re.fullmatch(r"[a-z][a-z_]{2,30}", code), code


def test_the_readme_names_every_failure_reason_an_alert_may_group_by() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    metric = readme[readme.index("`ober_check_failures_total{vip,reason}`") :]
    listed = set(re.findall(r"`([a-z_]+)`", metric[: metric.index("FAILURE_CODES")]))
    assert set(FAILURE_CODES) <= listed, set(FAILURE_CODES) - listed


def test_certificate_expiries_read_the_public_copies(tmp_path: Path) -> None:
    copies = tmp_path / "certs"
    copies.mkdir()
    key, copy = str(tmp_path / "k.pem"), str(copies / "s3.pem")
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", copy, "-days", "20"]
    subprocess.run(
        [*argv, "-subj", "/CN=s3.example"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (copies / "garbage.pem").write_text("not a certificate\n")
    [(path, end)] = certificate_expiries(str(copies))
    assert path == copy and abs(end - (time.time() + 20 * 86400)) < 120
    assert certificate_expiries(str(tmp_path / "absent")) == []


def test_the_endpoint_serves_metrics_next_to_the_state_and_renders_1000_vips_cheaply(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(2.0)
    state = h.state()
    template = state["vips"][V4]
    state["vips"] = {f"203.0.113.{i % 250}/32-{i}": dict(template) for i in range(1000)}  # type: ignore[misc]
    endpoint = StatusEndpoint("127.0.0.1", 0, certificates=lambda: [("/etc/ober/certs/s3.pem", 1.9e9)])
    endpoint.publish((json.dumps(state) + "\n").encode())
    renders = []
    for _ in range(5):
        started = time.perf_counter()
        body = endpoint.metrics()
        renders.append(time.perf_counter() - started)
    record_figure("ober-health /metrics render at 1000 VIPs (median of 5)", sorted(renders)[2])
    _, samples = parse(body.decode())
    assert sum(1 for key in samples if key[0] == "ober_vip_announced") == 1000
    assert value(samples, "ober_certificate_expiry_timestamp_seconds", path="/etc/ober/certs/s3.pem") == 1.9e9


def test_get_metrics_over_http(tmp_path: Path) -> None:
    from lab.procs import wait_for

    h = Harness(tmp_path)
    h.run(2.0)
    endpoint = StatusEndpoint("127.0.0.1", _free_port())
    endpoint.start()
    endpoint.publish(h.published[-1])
    url = f"http://127.0.0.1:{endpoint.port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(f"{url}/metrics", timeout=2).close()
        except OSError:
            return False
        return True

    wait_for(answers, timeout=10, what="the status endpoint to listen", interval=0.05)
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE
        _, samples = parse(response.read().decode())
    assert value(samples, "ober_vip_announced", vip=V4) == 1
    with urllib.request.urlopen(f"{url}/state", timeout=5) as response:
        assert json.loads(response.read())["vips"][V4]["state"] == "announced"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prometheus_scrapes_are_not_client_sessions() -> None:
    """haproxy.cfg's `frontend metrics` (ober_metrics_bind) is not S3 traffic: `ober status` leaves it out."""
    from ober_health.stats import summarize

    rows = [
        {"pxname": "s3", "svname": "FRONTEND", "scur": "3"},
        {"pxname": "metrics", "svname": "FRONTEND", "scur": "1"},
        {"pxname": "ober_health_metrics", "svname": "BACKEND", "scur": "1"},
    ]
    assert summarize(rows).client_sessions == {"s3": 3}
