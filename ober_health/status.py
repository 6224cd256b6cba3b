"""What `ober status` (and `drain --wait`, `doctor`) know about the health program: its state, where it came
from, whether it is fresh, and the verdict as an exit code with the reasons.

The state comes from the program's loopback status endpoint or from its state file, whichever is fresher:
a state file that cannot be written must not make a running, announcing program look "not running". When
neither gives a fresh state, the processes say the rest: no ober-health at all is "not running" (2); one
that does not answer is hung (2); one that runs but whose state cannot be read is "unknown" (4), and the
output says what cannot be known.

Exit codes: 0 every VIP announced, acknowledged by ExaBGP and carried by an established session of its
family; 1 degraded (a VIP withdrawn or unacknowledged, drained, no session for a VIP, ExaBGP not answering);
2 health program not running or hung; 3 config unusable (the CLI's); 4 running, state unknown.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ober_health.checks import http_get, short_error
from ober_health.config import DEFAULT_CONFIG_PATH, Config, parse_listen
from ober_health.endpoint import STATE_PATH
from ober_health.statefile import SessionState, State, read_state, validate_state
from ober_health.stats import HaproxyView, read_view

EXIT_OK, EXIT_DEGRADED, EXIT_NOT_RUNNING, EXIT_CONFIG, EXIT_UNKNOWN = 0, 1, 2, 3, 4
ENDPOINT_TIMEOUT = 1.0


@dataclass
class Report:
    state: State | None
    source: str = ""  # "status endpoint" | "state file" | ""
    running: bool = False  # a health program that keeps its state fresh
    age: float | None = None
    exit: int = EXIT_NOT_RUNNING
    error: str = ""  # why there is no fresh state
    problems: list[str] = field(default_factory=list)  # why the exit code is not 0
    warnings: list[str] = field(default_factory=list)  # true but not failing
    exabgp_pids: list[int] = field(default_factory=list)  # read only when no health program runs
    haproxy: HaproxyView | None = None  # HAProxy's stats now (backends UP/total, client sessions)
    backends: dict[str, str] = field(default_factory=dict)  # VIP prefix -> its HAProxy backend

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.state) if self.state is not None else {"vips": {}, "sessions": {}}
        if self.haproxy is not None:
            data["haproxy"] = self.haproxy.as_json()
            vips = {prefix: dict(vip) for prefix, vip in data["vips"].items()}
            for prefix, vip in vips.items():
                found = self.haproxy.backends.get(self.backends.get(prefix, ""))
                vip["backend"] = self.backends.get(prefix)
                vip["backend_up"] = found.up if found else None
                vip["backend_total"] = found.total if found else None
            data["vips"] = vips
        if not self.running:
            data["exabgp_pids"] = self.exabgp_pids
            data["routes"] = routes_when_not_running(self)
        data.update(
            running=self.running,
            age=None if self.age is None else round(self.age, 3),
            exit=self.exit,
            source=self.source,
            problems=self.problems,
            warnings=self.warnings,
        )
        if self.error:
            data["error"] = self.error
        return data


def stale_after(state: State) -> float:
    """A state older than this means the health program is hung or gone (watchdog territory)."""
    return max(2.0, 5 * float(state["interval"]))


def fetch_endpoint(listen: str, timeout: float = ENDPOINT_TIMEOUT) -> tuple[State | None, str, bool]:
    """(state, problem, hung): `hung` when something accepted the connection but did not answer in time."""
    address = parse_listen(listen) if listen else None
    if address is None:
        return None, "status endpoint off (health.status_listen)", False
    host, port = address
    url = f"http://[{host}]:{port}{STATE_PATH}" if ":" in host else f"http://{host}:{port}{STATE_PATH}"
    try:
        status, body = http_get(url, timeout)
    except TimeoutError:
        return None, f"status endpoint {url} did not answer within {timeout:g}s", True
    except OSError as exc:
        return None, f"status endpoint {url} unreachable ({short_error(exc)})", False
    if status != 200:
        return None, f"status endpoint {url} answered {status}", False
    try:
        return validate_state(json.loads(body), url), "", False
    except ValueError as exc:
        return None, str(exc), False


def read_file(path: str) -> tuple[State | None, str]:
    try:
        return read_state(Path(path)), ""
    except FileNotFoundError:
        return None, f"{path}: no such file"
    except IsADirectoryError:
        return None, f"{path}: is a directory"
    except OSError as exc:
        return None, f"{path}: cannot read ({exc.strerror or exc})"
    except ValueError as exc:
        return None, str(exc)


def _processes() -> Iterator[tuple[int, list[str], str]]:
    """(pid, argv, cwd) of every process this user may read, from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        yield int(entry.name), [part.decode(errors="replace") for part in argv if part], cwd


def health_processes(config_path: Path) -> list[int]:
    """PIDs of the ober-health programs (not `--check`) running with this config, from /proc."""
    wanted = _resolved(config_path)
    found = []
    for pid, words, cwd in _processes():
        if not any(os.path.basename(word) == "ober-health" or word == "ober_health.main" for word in words[:3]):
            continue
        if "--check" in words:
            continue
        given = words[words.index("--config") + 1] if "--config" in words[:-1] else str(DEFAULT_CONFIG_PATH)
        if _resolved(Path(cwd) / given) == wanted:
            found.append(pid)
    return sorted(found)


def exabgp_processes(config_path: Path) -> list[int]:
    """PIDs of the ExaBGP daemons whose config runs ober-health with this health config, from /proc.

    Read from what runs, so that `ober status` says whether routes can still be announced from this node
    when no health program runs: with no such ExaBGP there is no BGP session, hence no route."""
    wanted = _resolved(config_path)
    found = []
    for pid, words, cwd in _processes():
        if not any(os.path.basename(word) == "exabgp" for word in words[:2]):
            continue
        for word in words[1:]:
            if not word.endswith(".conf"):
                continue
            try:
                text = (Path(cwd) / word).read_text(errors="replace")
            except OSError:
                continue
            if f"--config {wanted}" in text or f"--config {config_path}" in text:
                found.append(pid)
                break
    return sorted(found)


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except OSError:
        return str(path)


def load_report(
    config: Config, config_path: Path = DEFAULT_CONFIG_PATH, now: float | None = None, with_haproxy: bool = False
) -> Report:
    """The freshest state there is, and the verdict on it; with HAProxy's stats now if `with_haproxy`."""
    now = time.time() if now is None else now
    from_endpoint, endpoint_problem, endpoint_hung = fetch_endpoint(config.health.status_listen)
    if from_endpoint is not None and from_endpoint["config"] != _resolved(config_path):
        # another health program (another config, another network namespace's view): not ours to report
        endpoint_problem = f"status endpoint serves the health program of {from_endpoint['config']!r}, not this one"
        from_endpoint = None
    from_file, file_problem = read_file(config.health.state_file)
    sources = [(s, where) for s, where in ((from_endpoint, "status endpoint"), (from_file, "state file")) if s]
    sources.sort(key=lambda pair: float(pair[0]["updated_at"]), reverse=True)
    state, source = sources[0] if sources else (None, "")
    report = Report(state, source, backends={vip.prefix: vip.backend for vip in config.vips if vip.backend})
    if with_haproxy:
        report.haproxy = read_view(config)
    if state is not None:
        report.age = max(0.0, now - float(state["updated_at"]))
        fresh = report.age <= stale_after(state)
        if fresh and source == "state file" and state["pid"] not in health_processes(config_path):
            fresh = False  # a fresh-looking file whose writer is gone (killed a moment ago)
        if fresh:
            report.running = True
            report.exit, report.problems = evaluate(state)
            if state["state_file_error"]:
                report.warnings.append(state["state_file_error"])
            if source == "state file" and config.health.status_listen and endpoint_problem:
                report.warnings.append(endpoint_problem)
            return report
    pids = health_processes(config_path)
    report.exabgp_pids = exabgp_processes(config_path)
    age = f"{report.age:.1f}s old" if report.age is not None else "missing"
    if not pids:
        report.exit = EXIT_NOT_RUNNING
        report.error = f"no ober-health process runs (last state: {age}; {file_problem or 'state file stale'})"
    elif endpoint_hung or source == "status endpoint":
        report.exit = EXIT_NOT_RUNNING
        report.error = f"health program pid {', '.join(map(str, pids))} is hung: its state is {age}"
    else:
        report.exit = EXIT_UNKNOWN
        report.error = (
            f"health program pid {', '.join(map(str, pids))} runs but its state cannot be read"
            f" (state file: {file_problem or age}; {endpoint_problem}):"
            " whether its VIPs are announced is unknown"
        )
    report.problems = [report.error]
    return report


def evaluate(state: State) -> tuple[int, list[str]]:
    """The exit code of a fresh state, and one line per reason it is not 0."""
    problems = []
    if not state["exabgp"]["answering"]:
        problems.append(f"ExaBGP is not answering: {state['exabgp']['problem']}")
    if state["phase"] != "running":
        problems.append(f"health program is {state['phase']}")
    if state["drained"]:
        problems.append(f"drained: {state['drain_reason']}")
    for prefix, vip in sorted(state["vips"].items()):
        family = ipaddress.ip_network(prefix).version
        if vip["state"] != "announced":
            problems.append(f"{prefix} withdrawn: {vip['reason']}")
        elif vip["acked"] is not True:
            said = "rejected (error)" if vip["acked"] is False else "not yet acknowledged"
            problems.append(f"{prefix}: ExaBGP {said} the {vip['command'] or 'announce'}")
        elif not any(s["state"] == "established" and s["family"] == family for s in state["sessions"].values()):
            down = [describe_session(a, s) for a, s in sorted(state["sessions"].items()) if s["family"] == family]
            problems.append(
                f"{prefix} announced but no established IPv{family} BGP session carries it"
                + (": " + "; ".join(down) if down else " (no IPv{family} peer known)")
            )
    return (EXIT_OK if not problems else EXIT_DEGRADED), problems


def when(stamp: object) -> str:
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return "-"
    return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def describe_session(address: str, session: SessionState) -> str:
    """`198.51.100.1 (AS65000): down since 2025-01-01 12:00:01Z: peer sent NOTIFICATION: ...`"""
    asn = f" (AS{session['asn']})" if session["asn"] is not None else " (not in health.toml)"
    since = f" since {when(session['since'])}" if session["since"] else ""
    reason = f": {session['reason']}" if session["reason"] else ""
    return f"{address}{asn}: {session['state']}{since}{reason}"


def format_report(report: Report) -> str:
    lines = []
    state = report.state
    if not report.running or state is None:
        label = "STATE UNKNOWN" if report.exit == EXIT_UNKNOWN else "NOT RUNNING"
        lines.append(f"health program {label}: {report.error}")
        lines.append(f"routes: {routes_when_not_running(report)}")
        lines += _haproxy_lines(report)
        return "\n".join(lines)
    lines.append(
        f"health program pid {state['pid']}, last check {report.age or 0:.1f}s ago, {state['loops']} loops"
        f" (from its {report.source})"
    )
    lines += [f"WARNING: {warning}" for warning in report.warnings]
    exabgp = state["exabgp"]
    lines.append(
        f"ExaBGP: {'answering' if exabgp['answering'] else 'NOT ANSWERING: ' + exabgp['problem']};"
        f" at start: {exabgp['reconciled']}"
    )
    if state["drained"]:
        lines.append(f"DRAINED: {state['drain_reason']}")
    if state["sessions"]:
        lines.append("BGP sessions:")
        lines += [f"  {describe_session(a, s)}" for a, s in sorted(state["sessions"].items())]
    lines += _haproxy_lines(report)
    if state["vips"]:
        # ROUTE: what this node tells ExaBGP; EXABGP: its answer to that command; BACKEND: HAProxy's servers
        # UP/total now; TIMES ANN/WDR: how often the VIP was announced / withdrawn by this health program
        lines.append(
            f"{'VIP':<24} {'ROUTE':<10} {'EXABGP':<8} {'SINCE':<21} {'BACKEND UP/TOTAL':<20} {'TIMES ANN/WDR':<13}"
            " LAST CHECK"
        )
        for prefix, vip in sorted(state["vips"].items()):
            result = "ok" if vip["last_ok"] else "FAIL"
            counts = f"{vip['announces']}/{vip['withdraws']}"
            acked = {True: "acked", False: "ERROR", None: "waiting"}[vip["acked"]]
            backend = _backend_cell(report, prefix)
            lines.append(
                f"{prefix:<24} {vip['state']:<10} {acked:<8} {when(vip['since']):<21} {backend:<20}"
                f" {counts:<13} {result}: {vip['reason']}"
            )
    if report.problems:
        lines.append(f"NOT OK (exit {report.exit}):")
        lines += [f"  - {problem}" for problem in report.problems]
    return "\n".join(lines)


def routes_when_not_running(report: Report) -> str:
    """What the routers have from this node while no health program runs, from what runs and what the last
    state says (never "ExaBGP keeps the routes" after a clean stop that withdrew them)."""
    state = report.state
    announced = sorted(p for p, v in state["vips"].items() if v["state"] == "announced") if state else []
    if state is not None and state["stopping"] and not announced:
        clean = f"stopped cleanly at {when(state['updated_at'])}: every VIP withdrawn"
        acked = all(v["acked"] is True for v in state["vips"].values())
        clean += " (ExaBGP acknowledged)" if acked else " (not every withdraw acknowledged by ExaBGP)"
    else:
        clean = ""
    if not report.exabgp_pids:
        what = "none from this node: ExaBGP is not running, so it has no BGP session"
        return f"{what}; {clean}" if clean else what
    pids = ", ".join(map(str, report.exabgp_pids))
    if clean:
        return f"{clean}; ExaBGP pid {pids} still runs without a health program"
    held = f" (last known announced: {', '.join(announced)})" if announced else ""
    return (
        f"ExaBGP pid {pids} runs without a health program: it keeps the routes it had{held}"
        " until it starts a new one or its watchdog stops it"
    )


def _backend_cell(report: Report, prefix: str) -> str:
    name = report.backends.get(prefix)
    if name is None:
        return "-"
    view = report.haproxy
    found = view.backends.get(name) if view is not None and not view.error else None
    return f"{name} {found.up}/{found.total}" if found else f"{name} ?"


def _haproxy_lines(report: Report) -> list[str]:
    view = report.haproxy
    if view is None:
        return []
    if view.error:
        return [f"HAProxy: stats not readable: {view.error}"]
    sessions = ", ".join(f"{name} {count}" for name, count in sorted(view.client_sessions.items()))
    return [f"HAProxy: {view.total_sessions} client session(s) now" + (f" (frontend {sessions})" if sessions else "")]


def to_json(report: Report, version: str = "") -> str:
    data = report.as_json()
    if version:
        data["version"] = version  # the `ober` installed, next to the state of the program that runs
    return json.dumps(data, indent=1, sort_keys=True)
