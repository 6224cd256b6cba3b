"""`ober doctor`: everything a healthy ingress node needs, checked where it is true, grouped, one line each,
and for each problem a hint that names the component at fault and the command that fixes it.

Groups, in the order a node depends on them: node prerequisites, kernel tuning, HAProxy, certificates, the
backends (RGW) behind HAProxy, the health program, BGP. A check that cannot be made because something it
depends on is down is SKIPped with that reason, so one fault is one FAIL: a stopped HAProxy is "HAProxy is
not running", not also a dead stats socket, failing backends and a missing health program (exabgp.service
is bound to haproxy.service and stops with it).

Levels: PASS; WARN (true, worth fixing, not failing: no hardware watchdog where the inventory allows it, too
few NIC queues, a tuning not in force, a certificate expiring within 30 days, a drained node); FAIL; SKIP.
Exit 0 when nothing FAILs (warnings included), 1 otherwise (3 when health.toml is unusable, from the CLI).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ober_health import certs, ocsp
from ober_health.checks import check_http, inspect_drain_file
from ober_health.config import Config
from ober_health.paths import PATHS
from ober_health.stats import HaproxyView, read_view
from ober_health.status import Report, describe_session, load_report

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
GROUPS = ("node", "kernel", "haproxy", "certificates", "backends", "health program", "bgp")
DEPLOY = "re-run the deploy (from the controller: pyinfra INVENTORY deploy.py --limit NODE)"


@dataclass(frozen=True)
class Check:
    group: str
    status: str  # PASS | WARN | FAIL | SKIP
    what: str
    hint: str = ""
    details: tuple[str, ...] = ()  # the evidence (haproxy -c's lines, the servers that are DOWN)

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "status": self.status.lower(),
            "what": self.what,
            "hint": self.hint,
            "details": list(self.details),
        }


@dataclass(frozen=True)
class NodeFiles:
    """Where the doctor looks; tests point these at files of their own."""

    cpuinfo: str = "/proc/cpuinfo"
    sys_net: str = "/sys/class/net"
    proc_sys: str = "/proc/sys"
    watchdog_device: str = "/dev/watchdog"
    haproxy_config: str = PATHS.haproxy_config
    sysctl_file: str = PATHS.sysctl_file
    watchdog_file: str = PATHS.watchdog_file


@dataclass
class Doctor:
    config: Config
    config_path: Path
    files: NodeFiles = field(default_factory=NodeFiles)

    def run(self) -> list[Check]:
        checks = [Check("node", PASS, f"health config {self.config_path} is valid")]
        checks += node_checks(self.config, self.files)
        checks += kernel_checks(self.files)
        haproxy_checks, view, haproxy_up = self.haproxy()
        checks += haproxy_checks
        checks += certificate_checks(self.files.haproxy_config)
        checks += backend_checks(self.config, view, haproxy_up)
        report = load_report(self.config, self.config_path)
        checks += health_checks(self.config, self.config_path, report, haproxy_up)
        checks += bgp_checks(self.config, report, haproxy_up)
        return checks

    def haproxy(self) -> tuple[list[Check], HaproxyView | None, bool]:
        """HAProxy's checks, its stats (None when it is down), and whether it runs."""
        checks = [haproxy_config_check(self.files.haproxy_config)]
        url = self.config.health.haproxy_url
        http = check_http(url, max(self.config.health.timeout, 1.0))
        pids = haproxy_processes()
        if not pids and not http.ok:
            checks.insert(
                0,
                Check(
                    "haproxy",
                    FAIL,
                    "HAProxy is not running",
                    "systemctl start haproxy.service; why it stopped: ober logs --service haproxy"
                    " (ExaBGP is bound to HAProxy: it stopped too, and the node announces nothing)",
                ),
            )
            return checks, None, False
        view = read_view(self.config)
        answering = http.ok or "answered 503" in http.reason
        if answering:
            why = " (503: a backend has no server UP, see backends)" if not http.ok else ""
            checks.insert(0, Check("haproxy", PASS, f"HAProxy runs and answers {url}{why}"))
        elif "did not answer" in http.reason:
            checks.insert(
                0,
                Check(
                    "haproxy",
                    FAIL,
                    f"HAProxy is hung: {http.reason}",
                    "systemctl restart haproxy.service (the health program withdrew this node's VIPs meanwhile)",
                ),
            )
        else:
            checks.insert(
                0,
                Check(
                    "haproxy",
                    FAIL,
                    f"HAProxy runs (pid {', '.join(map(str, pids[:3]))}) but {http.reason}",
                    f"its `frontend stats` (bind {PATHS.haproxy_monitor}, monitor-uri {PATHS.haproxy_health_uri})"
                    f" is not loaded: is {self.files.haproxy_config} ober's? {DEPLOY}",
                ),
            )
        if view.error:
            if not answering:  # the same fault seen twice: the line above names it
                checks.append(Check("haproxy", SKIP, f"stats socket {self.config.health.stats_socket}: {view.error}"))
                return checks, None, True
            checks.append(
                Check(
                    "haproxy",
                    FAIL,
                    f"stats socket {self.config.health.stats_socket}: {view.error}",
                    f"`stats socket {self.config.health.stats_socket}` in {self.files.haproxy_config} (group ober,"
                    f" mode 660): {DEPLOY}",
                )
            )
            return checks, None, True
        checks.append(
            Check(
                "haproxy",
                PASS,
                f"stats socket {self.config.health.stats_socket} answers ({view.total_sessions} client session(s) now)",
            )
        )
        return checks, view, True


def haproxy_processes() -> list[int]:
    """PIDs of HAProxy processes (master and workers), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if os.path.basename(argv0.decode(errors="replace")) == "haproxy":
            found.append(int(entry.name))
    return sorted(found)


# ---- node prerequisites


def node_checks(config: Config, files: NodeFiles) -> list[Check]:
    return [
        aes_check(files.cpuinfo),
        *queue_checks(config, files.sys_net),
        watchdog_check(files, required=config.health.hardware_watchdog),
    ]


def aes_check(cpuinfo: str) -> Check:
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError as exc:
        return Check("node", WARN, f"AES instructions: cannot read {cpuinfo} ({exc.strerror})")
    flags = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):  # x86 / ARM
            flags.update(value.split())
    if "aes" in flags:
        return Check("node", PASS, "AES-NI: the CPU has AES instructions (TLS at line rate)")
    return Check(
        "node",
        WARN,
        f"AES-NI: no `aes` flag in {cpuinfo}: TLS costs several times more CPU",
        "on a VM, give it the host's CPU model (libvirt: <cpu mode='host-passthrough'/>, Proxmox: cpu: host);"
        " on metal, enable AES-NI in the firmware",
    )


def session_interfaces(config: Config) -> list[str]:
    """The interfaces the BGP sessions (and so the VIPs' traffic) leave by: `ip route get PEER`."""
    found: list[str] = []
    for peer in config.peers:
        try:
            out = subprocess.run(
                ["ip", "route", "get", peer.address], capture_output=True, text=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"\bdev (\S+)", out)
        if match and match[1] not in found and match[1] != "lo":
            found.append(match[1])
    return found


def queue_checks(config: Config, sys_net: str, interfaces: list[str] | None = None) -> list[Check]:
    vcpus = os.cpu_count() or 1
    names = session_interfaces(config) if interfaces is None else interfaces
    if not names:
        return [Check("node", WARN, "NIC queues: no interface found towards the BGP peers (ip route get PEER)")]
    checks = []
    for name in names:
        queues = Path(sys_net) / name / "queues"
        try:
            rx = sum(1 for q in queues.iterdir() if q.name.startswith("rx-"))
        except OSError:
            checks.append(Check("node", WARN, f"NIC queues of {name}: {queues} not readable"))
            continue
        if rx >= vcpus:
            checks.append(Check("node", PASS, f"NIC queues: {name} has {rx} receive queue(s) for {vcpus} vCPU(s)"))
        else:
            checks.append(
                Check(
                    "node",
                    WARN,
                    f"NIC queues: {name} has {rx} receive queue(s) for {vcpus} vCPU(s): fewer CPUs take the"
                    " interrupts than HAProxy has threads",
                    f"ethtool -l {name}; ethtool -L {name} combined {vcpus}"
                    f" (a VM's virtio NIC: give it queues={vcpus})",
                )
            )
    return checks


def watchdog_check(files: NodeFiles, required: bool = True) -> Check:
    """A hardware watchdog, and systemd using it (RuntimeWatchdogSec, which the deploy sets when the device
    exists): without one a hung kernel keeps its BGP sessions until the routers' hold timer ends them. A
    failure where the inventory requires one (ober_hardware_watchdog, the default), else a warning."""
    missing = FAIL if required else WARN
    if not Path(files.watchdog_device).exists():
        return Check(
            "node",
            missing,
            f"hardware watchdog: no {files.watchdog_device}: a node whose kernel hangs is not reset",
            "load the board's watchdog driver (iTCO_wdt, sp5100_tco, ipmi_watchdog; QEMU: -device i6300esb),"
            f" then {DEPLOY}: it sets systemd's RuntimeWatchdogSec",
        )
    runtime = runtime_watchdog(files.watchdog_file)
    if runtime in ("", "0", "off", "infinity"):
        return Check(
            "node",
            missing,
            f"hardware watchdog: {files.watchdog_device} exists but systemd does not use it"
            f" (RuntimeWatchdogSec={runtime or 'unset'})",
            f"{DEPLOY} (it writes {files.watchdog_file}), then systemctl daemon-reexec",
        )
    return Check("node", PASS, f"hardware watchdog: {files.watchdog_device}, systemd RuntimeWatchdogSec={runtime}")


def runtime_watchdog(watchdog_file: str) -> str:
    """systemd's RuntimeWatchdogSec in force (`systemctl show`), or the file's value when systemd cannot say."""
    try:
        out = subprocess.run(
            ["systemctl", "show", "--property=RuntimeWatchdogUSec", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        match = re.search(r"^RuntimeWatchdogSec=(\S+)", Path(watchdog_file).read_text(), re.M)
    except OSError:
        return ""
    return match[1] if match else ""


# ---- kernel


def deployed_sysctls(text: str) -> tuple[dict[str, str], list[str]]:
    """(key -> value set, keys skipped) from the deploy's sysctl.d file (skipped keys are commented out)."""
    settings: dict[str, str] = {}
    skipped: list[str] = []
    for line in text.splitlines():
        skipped_match = re.match(r"#\s*([a-z0-9_.-]+)\s*=.*skipped", line)
        if skipped_match:
            skipped.append(skipped_match[1])
            continue
        code = line.split("#", 1)[0].strip()
        if "=" in code:
            key, value = (part.strip() for part in code.split("=", 1))
            settings[key] = value
    return settings, skipped


def kernel_checks(files: NodeFiles) -> list[Check]:
    try:
        text = Path(files.sysctl_file).read_text()
    except FileNotFoundError:
        return [
            Check("kernel", PASS, f"no kernel tuning deployed ({files.sysctl_file} absent: ober_kernel_tuning off)")
        ]
    except OSError as exc:
        return [Check("kernel", WARN, f"kernel tuning: cannot read {files.sysctl_file} ({exc.strerror})")]
    settings, skipped = deployed_sysctls(text)
    wrong = []
    for key, value in settings.items():
        live_path = Path(files.proc_sys) / key.replace(".", "/")
        try:
            live = " ".join(live_path.read_text().split())
        except OSError:
            wrong.append(f"{key}: not readable in {files.proc_sys} (the deploy sets {value})")
            continue
        if live != " ".join(value.split()):
            wrong.append(f"{key} = {live}, the deploy sets {value}")
    note = f"; {len(skipped)} key(s) not writable here (container), left to the host" if skipped else ""
    if not wrong:
        return [
            Check("kernel", PASS, f"kernel tuning in force: {len(settings)} setting(s) of {files.sysctl_file}{note}")
        ]
    return [
        Check(
            "kernel",
            WARN,
            f"kernel tuning: {len(wrong)} of {len(settings)} setting(s) of {files.sysctl_file} not in force{note}",
            f"sysctl -p {files.sysctl_file}; if a value comes back, a later file overrides it:"
            " systemd-sysctl --cat-config | grep KEY",
            tuple(wrong),
        )
    ]


# ---- HAProxy and its certificates


def haproxy_config_check(haproxy_config: str) -> Check:
    """`haproxy -c` without -q (2.6 prints nothing with -q, not even why it failed): its lines are the reason."""
    haproxy = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )
    if haproxy is None:
        return Check("haproxy", FAIL, "haproxy is not installed", f"{DEPLOY} (it installs HAProxy)")
    if not Path(haproxy_config).exists():
        return Check("haproxy", FAIL, f"{haproxy_config} is missing", DEPLOY)
    if os.geteuid() != 0:
        return Check("haproxy", SKIP, f"haproxy -c {haproxy_config}: run ober doctor as root (it reads the keys)")
    try:
        result = subprocess.run(
            [haproxy, "-c", "-f", haproxy_config], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return Check("haproxy", FAIL, f"haproxy -c -f {haproxy_config} did not finish in 30 s")
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode == 0:
        warnings = [line for line in lines if "WARNING" in line]
        return Check(
            "haproxy",
            PASS,
            f"haproxy -c -f {haproxy_config}: valid" + (f" ({len(warnings)} warning(s))" if warnings else ""),
            details=tuple(warnings[:10]),
        )
    reasons = [line for line in lines if "ALERT" in line or "ERROR" in line] or lines
    return Check(
        "haproxy",
        FAIL,
        f"haproxy -c -f {haproxy_config}: rejected (exit {result.returncode})",
        "HAProxy keeps running its last good config, but its next reload, restart or boot fails: fix the lines"
        f" above, or {DEPLOY}: it writes haproxy.cfg back, checked before it goes live",
        tuple(reasons[:12]),
    )


def certificate_checks(haproxy_config: str, now: float | None = None) -> list[Check]:
    try:
        text = Path(haproxy_config).read_text(errors="replace")
    except OSError:
        return [Check("certificates", SKIP, f"no {haproxy_config} to read the certificates from")]
    crts = certs.crt_paths(text)
    if not crts:
        return [Check("certificates", PASS, "no TLS listener in haproxy.cfg (HTTP only)")]
    renew = "renew it, put the new bundle where ober_tls_certificates names it on the controller, and " + DEPLOY
    checks = []
    for crt in crts:
        bundles = certs.bundles_in(crt)
        if not bundles:
            checks.append(
                Check(
                    "certificates",
                    FAIL,
                    f"no certificate in {crt} (haproxy.cfg's crt): HAProxy cannot start or reload",
                    f"{DEPLOY}: it puts the bundles of ober_tls_certificates there",
                )
            )
            continue
        for path in bundles:
            bundle = certs.inspect_bundle(path, now)
            days = bundle.days_left(now)
            if bundle.problem == "no such file":
                checks.append(
                    Check(
                        "certificates",
                        FAIL,
                        f"{path}: missing (haproxy.cfg's crt): HAProxy cannot start or reload",
                        f"{DEPLOY}: it puts the bundles of ober_tls_certificates there",
                    )
                )
            elif bundle.problem:
                checks.append(Check("certificates", FAIL, f"{path}: {bundle.problem}", renew))
            elif days is not None and days < certs.EXPIRY_WARNING_DAYS:
                checks.append(Check("certificates", WARN, f"{path}: expires in {days:.0f} day(s)", renew))
            else:
                left = f", valid for {days:.0f} more day(s)" if days is not None else ""
                checks.append(Check("certificates", PASS, f"{path}: certificate and key match{left}"))
            stapled = ocsp_check(path, now)
            if stapled is not None:
                checks.append(stapled)
    return checks


def ocsp_check(bundle: Path, now: float | None = None) -> Check | None:
    """The OCSP response a restart of HAProxy would staple for `bundle` (`<bundle>.ocsp`, the one
    `ober ocsp-update` last handed to HAProxy); None when stapling is off (no such file)."""
    path = ocsp.companion(bundle)
    try:
        if not path.exists():
            return None
    except PermissionError:
        return Check("certificates", SKIP, f"{path}: run ober doctor as root (the OCSP responses are root's)")
    now = time.time() if now is None else now
    fetch = "ober ocsp-update; journalctl -u ober-ocsp (the node must reach the responder the certificate names)"
    response = ocsp.read_response(path)
    if response.problem:
        return Check("certificates", WARN, f"{path}: OCSP stapling on, but nothing stapled: {response.problem}", fetch)
    said = ocsp.describe(response)
    if response.status == "revoked":
        renew = "replace the certificate (ober_tls_certificates) and " + DEPLOY
        return Check("certificates", FAIL, f"{bundle}: its CA's OCSP responder says it is REVOKED ({said})", renew)
    if response.next_update is not None and response.next_update <= now:
        return Check("certificates", WARN, f"{path}: the OCSP response has ended ({said}): none is stapled", fetch)
    if response.next_update is not None and response.next_update - now < ocsp.NEAR_EXPIRY_SECONDS:
        hours = (response.next_update - now) / 3600
        return Check("certificates", WARN, f"{path}: the stapled OCSP response ends in {hours:.1f} h ({said})", fetch)
    return Check("certificates", PASS, f"{path}: OCSP response stapled ({said})")


# ---- the backends (RGW) behind HAProxy


def backend_checks(config: Config, view: HaproxyView | None, haproxy_up: bool) -> list[Check]:
    wanted: dict[str, int] = {}
    for vip in config.vips:
        if vip.backend:
            wanted[vip.backend] = max(wanted.get(vip.backend, 0), vip.min_up)
    if not wanted:
        return [Check("backends", PASS, "no VIP names a backend to count")]
    if view is None:
        why = "HAProxy is not running" if not haproxy_up else "HAProxy's stats socket does not answer"
        return [Check("backends", SKIP, f"backends not checked: {why} (see haproxy)")]
    checks = []
    for name, min_up in sorted(wanted.items()):
        backend = view.backends.get(name)
        vips = ", ".join(vip.prefix for vip in config.vips if vip.backend == name)
        if backend is None:
            checks.append(
                Check(
                    "backends",
                    FAIL,
                    f"backend {name} (VIP {vips}) is not in HAProxy's config",
                    f"health.toml and haproxy.cfg disagree: {DEPLOY}",
                )
            )
            continue
        down = tuple(
            f"{s.name}"
            + (f" ({s.address})" if s.address else "")
            + f": {s.status}"
            + (f", last check {s.check}" if s.check else "")
            for s in backend.down
        )
        probe = next((f"curl -sI http://{s.address}/" for s in backend.down if s.address), "curl -sI http://HOST:PORT/")
        what = f"backend {name} (VIP {vips}): {backend.up}/{backend.total} server(s) UP"
        if backend.up < min_up:
            checks.append(
                Check(
                    "backends",
                    FAIL,
                    f"{what}, needs {min_up}: its VIPs are withdrawn",
                    "HAProxy is fine: the RGW gateways behind it fail its health checks. Check the radosgw daemons"
                    " on those hosts (systemctl status ceph-radosgw@*), and that this node reaches them"
                    f" ({probe} from here)",
                    down,
                )
            )
        elif down:
            checks.append(Check("backends", WARN, f"{what} (enough: {min_up})", "see the servers below", down))
        else:
            checks.append(Check("backends", PASS, what))
    return checks


# ---- the health program and BGP


def health_checks(config: Config, config_path: Path, report: Report, haproxy_up: bool) -> list[Check]:
    state = report.state if report.running else None
    checks: list[Check] = []
    if state is None:
        if not haproxy_up and not report.exabgp_pids:
            return [
                Check(
                    "health program",
                    SKIP,
                    "not checked: exabgp.service (with ober-health) is bound to HAProxy, which is not running",
                )
            ]
        return [
            Check(
                "health program",
                FAIL,
                f"health program: {report.error}",
                "systemctl status exabgp.service; ober logs --service health",
            )
        ]
    checks.append(Check("health program", PASS, f"health program pid {state['pid']} keeps its state fresh"))
    if state["state_file_error"]:
        checks.append(
            Check(
                "health program",
                FAIL,
                f"state file {config.health.state_file} is written",
                state["state_file_error"] + f" (the health program runs as its unit's user; see {config_path})",
            )
        )
    exabgp = state["exabgp"]
    checks.append(
        Check(
            "health program",
            PASS if exabgp["answering"] else FAIL,
            f"ExaBGP answers its health program ({exabgp['problem'] or 'yes'})",
            "" if exabgp["answering"] else "its watchdog restarts a hung ExaBGP; ober logs --service bgp",
        )
    )
    for path, runtime in ((config.health.maintenance_file, False), (config.health.drain_file, True)):
        found = inspect_drain_file(path)
        if found.problem:
            hint = (
                f"{path} is a directory, not a drain file: remove it yourself (rmdir) if the maintenance is over"
                if Path(path).is_dir()
                else "check its parents' permissions"
            )
            checks.append(Check("health program", FAIL, f"drain path {path}: {found.problem}", hint))
        elif found.present:
            undrain = "ober undrain" + (" --runtime" if runtime else "")
            checks.append(
                Check(
                    "health program", WARN, f"drained by {path}: every VIP withdrawn on purpose", f"{undrain} when done"
                )
            )
    for prefix, vip in sorted(state["vips"].items()):
        ok = vip["state"] == "announced" and vip["acked"] is True
        what = f"VIP {prefix} {vip['state']}" + ("" if vip["acked"] is True else f" (ExaBGP: {vip['acked']})")
        what += f": {vip['reason']}"
        if ok:
            checks.append(Check("health program", PASS, what))
        elif state["drained"]:
            checks.append(Check("health program", WARN, what + " (drained)"))
        else:
            checks.append(Check("health program", FAIL, what, "the cause is in the checks above; ober status"))
    return checks


def bgp_checks(config: Config, report: Report, haproxy_up: bool) -> list[Check]:
    state = report.state if report.running else None
    if state is None:
        return [Check("bgp", SKIP, "sessions unknown: the health program is not running (see above)")]
    checks = []
    local = f"AS{config.bgp.local_asn}" if config.bgp else "this node's AS"
    for address, peer in sorted(state["sessions"].items()):
        if not peer["configured"]:
            continue
        up = peer["state"] == "established"
        checks.append(
            Check(
                "bgp",
                PASS if up else FAIL,
                f"BGP session {describe_session(address, peer)}",
                ""
                if up
                else f"on the router {address}: is the session to this node enabled, with this node's address and"
                f" {local}? ober test-bgp --peer {address}; ober logs --service bgp",
            )
        )
    for prefix in sorted(state["vips"]):
        family = ipaddress.ip_network(prefix).version
        if not any(s["state"] == "established" and s["family"] == family for s in state["sessions"].values()):
            checks.append(
                Check(
                    "bgp",
                    FAIL,
                    f"VIP {prefix}: no established IPv{family} session carries it",
                    "see the sessions above",
                )
            )
    if not checks:
        checks.append(Check("bgp", WARN, "no BGP peer in health.toml: sessions not checked", DEPLOY))
    return checks


def by_group(checks: list[Check]) -> Iterator[tuple[str, list[Check]]]:
    for group in GROUPS:
        members = [check for check in checks if check.group == group]
        if members:
            yield group, members


def format_checks(checks: list[Check]) -> str:
    lines = []
    for group, members in by_group(checks):
        lines.append(group)
        for check in members:
            lines.append(f"  {check.status}  {check.what}")
            lines += [f"          {detail}" for detail in check.details]
            if check.hint and check.status in (FAIL, WARN):
                lines.append(f"        hint: {check.hint}")
    failed = sum(check.status == FAIL for check in checks)
    warned = sum(check.status == WARN for check in checks)
    lines.append(f"{failed} failed, {warned} warning(s), {sum(c.status == PASS for c in checks)} passed")
    return "\n".join(lines)


def exit_code(checks: list[Check]) -> int:
    """0 when nothing failed (warnings do not fail), 1 otherwise."""
    return 1 if any(check.status == FAIL for check in checks) else 0
