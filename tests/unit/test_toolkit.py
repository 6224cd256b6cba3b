"""The node's operator toolkit as logic: `ober logs`' journalctl lines, HAProxy's stats summarized for
`ober status`, the status table and what it says about routes when no health program runs, and each of
`ober doctor`'s checks on files of the test's own (real `haproxy -c`, real certificates from openssl)."""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ober_health import doctor
from ober_health.config import parse_config
from ober_health.doctor import FAIL, PASS, SKIP, WARN, Check, NodeFiles
from ober_health.logs import journalctl_argv
from ober_health.stats import HaproxyView, summarize
from ober_health.status import Report, format_report, routes_when_not_running
from tests.unit.test_statefile import sample

CONFIG = parse_config(
    {
        "bgp": {"local_asn": 65001, "router_id": "198.51.100.11"},
        "peer": [{"address": "198.51.100.1", "asn": 65000}],
        "vip": [{"prefix": "203.0.113.10/32", "backend": "be_rgw", "min_up": 1}],
    }
)

# `show stat` of HAProxy 2.6 (columns cut to those read; a real header has ~100), two servers, one DOWN
SHOW_STAT = """# pxname,svname,scur,status,check_status,last_chk,addr
stats,FRONTEND,1,OPEN,,,
s3,FRONTEND,7,OPEN,,,
be_rgw,rgw01,3,UP,L7OK,200,198.51.100.21:7480
be_rgw,rgw02,0,DOWN,L4CON,Connection refused,198.51.100.22:7480
be_rgw,BACKEND,3,UP,,,
"""


def stat_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(SHOW_STAT.lstrip("# ").splitlines()))


# ---- ober logs


def test_logs_health_is_the_health_programs_lines_of_exabgps_journal() -> None:
    argv = journalctl_argv("health", 20, follow=False)
    assert argv[:4] == ["journalctl", "--no-pager", "--lines", "20"]
    assert argv[argv.index("--unit") + 1] == "exabgp.service" and argv.count("--unit") == 1
    pattern = argv[argv.index("--grep") + 1]
    # the same PCRE2 semantics as Python's re for this pattern
    assert re.search(pattern, "ober-health[812]: 203.0.113.10/32 announced")
    assert not re.search(pattern, "Peer  198.51.100.1 ASN 65000 connected")


def test_logs_bgp_is_exabgps_own_lines_without_the_health_programs() -> None:
    argv = journalctl_argv("bgp", 50, follow=True)
    assert "--follow" in argv and argv[argv.index("--unit") + 1] == "exabgp.service"
    pattern = argv[argv.index("--grep") + 1]
    assert re.search(pattern, "Peer  198.51.100.1 ASN 65000 connected")
    assert not re.search(pattern, "ober-health[812]: 203.0.113.10/32 announced")


def test_logs_haproxy_and_all_name_their_units_and_filter_nothing() -> None:
    haproxy = journalctl_argv("haproxy", 5, follow=False, since="10 min ago")
    assert [haproxy[i + 1] for i, w in enumerate(haproxy) if w == "--unit"] == ["haproxy.service"]
    assert "--grep" not in haproxy and haproxy[haproxy.index("--since") + 1] == "10 min ago"
    every = journalctl_argv("all", 5, follow=False)
    assert {every[i + 1] for i, w in enumerate(every) if w == "--unit"} >= {"exabgp.service", "haproxy.service"}
    with pytest.raises(ValueError, match="--service: 'http'"):
        journalctl_argv("http", 5, follow=False)


# ---- HAProxy's stats and ober status


def test_stats_count_servers_up_of_total_and_client_sessions_of_the_client_frontends() -> None:
    view = summarize(stat_rows())
    backend = view.backends["be_rgw"]
    assert (backend.up, backend.total, backend.sessions) == (1, 2, 3)
    assert [(s.name, s.check) for s in backend.down] == [("rgw02", "L4CON Connection refused")]
    assert view.client_sessions == {"s3": 7}  # HAProxy's own stats page is not a client
    assert view.as_json()["backends"]["be_rgw"]["down"] == {"rgw02": "DOWN: L4CON Connection refused"}


def test_status_columns_name_what_they_hold() -> None:
    view = summarize(stat_rows())
    state = sample()
    state["vips"]["203.0.113.10/32"].update({"announces": 3, "withdraws": 2})
    report = Report(state, "state file", running=True, age=0.1, exit=0, haproxy=view)
    report.backends = {"203.0.113.10/32": "be_rgw"}
    text = format_report(report)
    header = next(line for line in text.splitlines() if line.startswith("VIP"))
    assert "UP/DOWN" not in header and "BACKEND UP/TOTAL" in header and "TIMES ANN/WDR" in header
    row = next(line for line in text.splitlines() if line.startswith("203.0.113.10/32"))
    assert "be_rgw 1/2" in row and " 3/2 " in row
    assert "HAProxy: 7 client session(s) now (frontend s3 7)" in text
    data = report.as_json()
    assert data["vips"]["203.0.113.10/32"]["backend_up"] == 1 and data["haproxy"]["client_sessions"] == 7


def test_after_a_clean_stop_status_says_the_routes_were_withdrawn_not_kept() -> None:
    state = sample(stopping=True, phase="stopping")
    state["vips"]["203.0.113.10/32"].update({"state": "withdrawn", "command": "withdraw", "acked": True})
    report = Report(state, "state file", running=False, exit=2, error="no ober-health process runs")
    said = routes_when_not_running(report)
    assert "ExaBGP is not running" in said and "stopped cleanly" in said and "acknowledged" in said
    assert "keeps" not in format_report(report)


def test_with_exabgp_still_running_and_no_health_program_status_says_it_keeps_the_routes() -> None:
    report = Report(sample(), "state file", running=False, exit=2, error="no ober-health process runs")
    report.exabgp_pids = [4242]
    said = routes_when_not_running(report)
    assert "ExaBGP pid 4242 runs without a health program: it keeps the routes" in said
    assert "203.0.113.10/32" in said


# ---- ober doctor's checks


def test_aes_ni_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vme sse2 aes avx\n")
    assert doctor.aes_check(str(cpuinfo)).status == PASS
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vme sse2 avx\n")
    check = doctor.aes_check(str(cpuinfo))
    assert check.status == WARN and "host-passthrough" in check.hint


def test_nic_queues_fewer_than_vcpus_is_a_warning_naming_ethtool(tmp_path: Path) -> None:
    (tmp_path / "eth0" / "queues" / "rx-0").mkdir(parents=True)
    (tmp_path / "eth0" / "queues" / "tx-0").mkdir()
    check = doctor.queue_checks(CONFIG, str(tmp_path), interfaces=["eth0"])[0]
    vcpus = os.cpu_count() or 1
    if vcpus > 1:
        assert check.status == WARN and f"ethtool -L eth0 combined {vcpus}" in check.hint
    for index in range(1, vcpus):
        (tmp_path / "eth0" / "queues" / f"rx-{index}").mkdir()
    assert doctor.queue_checks(CONFIG, str(tmp_path), interfaces=["eth0"])[0].status == PASS


def test_no_watchdog_device_fails_where_required_and_warns_where_not_never_silent(tmp_path: Path) -> None:
    files = NodeFiles(watchdog_device=str(tmp_path / "watchdog"))
    check = doctor.watchdog_check(files)  # the inventory's default: required
    assert check.status == FAIL and "no " in check.what and "RuntimeWatchdogSec" in check.hint
    check = doctor.watchdog_check(files, required=False)  # ober_hardware_watchdog = False (VMs, containers)
    assert check.status == WARN and "no " in check.what and "RuntimeWatchdogSec" in check.hint


def test_kernel_tuning_compares_the_deploys_file_with_what_is_in_force(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "net" / "core").mkdir(parents=True)
    (proc / "net" / "ipv4").mkdir(parents=True)
    (proc / "net" / "core" / "somaxconn").write_text("65535\n")
    (proc / "net" / "ipv4" / "tcp_rmem").write_text("4096\t131072\t67108864\n")  # the kernel's tabs
    sysctl = tmp_path / "60-ober.conf"
    sysctl.write_text(
        "# managed\nnet.core.somaxconn = 65535  # backlog\nnet.ipv4.tcp_rmem = 4096 131072 67108864  # buffers\n"
        "# fs.file-max = 2097152  # skipped: not writable here (container)\n"
    )
    files = NodeFiles(proc_sys=str(proc), sysctl_file=str(sysctl))
    check = doctor.kernel_checks(files)[0]
    assert check.status == PASS and "2 setting(s)" in check.what and "1 key(s) not writable" in check.what
    (proc / "net" / "core" / "somaxconn").write_text("4096\n")
    check = doctor.kernel_checks(files)[0]
    assert check.status == WARN and check.details == ("net.core.somaxconn = 4096, the deploy sets 65535",)


needs_root_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None or os.geteuid() != 0, reason="haproxy -c as root"
)


@needs_root_haproxy
def test_a_broken_haproxy_cfg_fails_with_haproxys_own_words(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("defaults\n    mode http\nfrontend s3\n    bind 127.0.0.1:18999\n    use_backend nowhere\n")
    check = doctor.haproxy_config_check(str(cfg))
    assert check.status == FAIL and check.details, check
    assert any("nowhere" in line for line in check.details), check.details  # HAProxy's ALERT, not a bare FAIL
    assert "deploy" in check.hint


def bundle(tmp_path: Path, name: str, days: int, mismatched: bool = False) -> Path:
    key, csr, cert = tmp_path / f"{name}.k", tmp_path / f"{name}.csr", tmp_path / f"{name}.c"

    def run(*argv: str | Path) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    run("openssl", "x509", "-req", "-in", csr, "-key", key, "-out", cert, "-days", str(days))
    if mismatched:
        run("openssl", "genrsa", "-out", key, "2048")
    path = tmp_path / "certs" / f"{name}.pem"
    path.parent.mkdir(exist_ok=True)
    path.write_text(cert.read_text() + key.read_text())
    return path


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificates")
def test_certificates_present_matching_expiring_expired_and_missing(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"frontend s3\n    bind 203.0.113.10:443 ssl crt {tmp_path / 'certs'}/ alpn h2,http/1.1\n")
    (tmp_path / "certs").mkdir()
    [empty] = doctor.certificate_checks(str(cfg))
    assert empty.status == FAIL and "no certificate in" in empty.what and "deploy" in empty.hint
    bundle(tmp_path, "good", 365)
    bundle(tmp_path, "soon", 10)
    bundle(tmp_path, "old", -1)
    bundle(tmp_path, "wrongkey", 365, mismatched=True)
    found = {Path(c.what.split(":")[0]).name: c for c in doctor.certificate_checks(str(cfg))}
    assert found["good.pem"].status == PASS and "certificate and key match" in found["good.pem"].what
    assert found["soon.pem"].status == WARN and "expires in" in found["soon.pem"].what
    assert found["old.pem"].status == FAIL and "has expired (on" in found["old.pem"].what
    assert "renew" in found["old.pem"].hint
    assert found["wrongkey.pem"].status == FAIL and "does not match" in found["wrongkey.pem"].what
    cfg.write_text(f"frontend s3\n    bind :443 ssl crt {tmp_path / 'gone.pem'}\n")
    [missing] = doctor.certificate_checks(str(cfg))
    assert missing.status == FAIL and "missing" in missing.what


def test_backends_down_points_at_the_rgws_not_at_haproxy() -> None:
    view = summarize(stat_rows())
    view.backends["be_rgw"] = dataclasses.replace(view.backends["be_rgw"], up=0)
    [check] = doctor.backend_checks(CONFIG, view, haproxy_up=True)
    assert check.status == FAIL and "0/2 server(s) UP" in check.what
    assert "HAProxy is fine" in check.hint and "radosgw" in check.hint
    assert "rgw02 (198.51.100.22:7480): DOWN, last check L4CON Connection refused" in check.details
    assert "curl -sI http://198.51.100.22:7480/" in check.hint


def test_backends_with_some_down_but_enough_up_is_a_warning() -> None:
    view = summarize(stat_rows())
    [check] = doctor.backend_checks(CONFIG, view, haproxy_up=True)
    assert check.status == WARN and "1/2" in check.what


def test_with_haproxy_down_backends_health_and_bgp_are_skipped_not_failed() -> None:
    assert doctor.backend_checks(CONFIG, None, haproxy_up=False)[0].status == SKIP
    report = Report(None, exit=2, error="no ober-health process runs")
    assert [c.status for c in doctor.health_checks(CONFIG, Path("x"), report, haproxy_up=False)] == [SKIP]
    assert [c.status for c in doctor.bgp_checks(CONFIG, report, haproxy_up=False)] == [SKIP]


def test_warnings_do_not_fail_the_exit_code() -> None:
    assert doctor.exit_code([Check("node", PASS, "a"), Check("node", WARN, "b")]) == 0
    assert doctor.exit_code([Check("node", WARN, "b"), Check("bgp", FAIL, "c")]) == 1
    text = doctor.format_checks([Check("node", WARN, "b", "do this"), Check("bgp", FAIL, "c", "do that")])
    assert text.splitlines() == [
        "node",
        "  WARN  b",
        "        hint: do this",
        "bgp",
        "  FAIL  c",
        "        hint: do that",
        "1 failed, 1 warning(s), 0 passed",
    ]


def test_haproxy_view_error_is_carried() -> None:
    assert HaproxyView(error="x").as_json()["client_sessions"] is None
