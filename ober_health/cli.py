"""`ober`: the operator's view of one ingress node - status, drain, undrain, doctor.

Everything here reads what the health program already knows (its state file) or the same files it
watches (maintenance/drain), so the CLI can never disagree with what is announced. Exit codes are meant
for scripts:

    status: 0 every VIP announced, 1 some VIP withdrawn or node drained, 2 health program not running/stale,
            3 config unusable
    drain --wait / doctor: 0 done / all checks pass, 1 timed out / a check failed, 3 config unusable
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from ober_health import __version__
from ober_health.checks import check_http, read_stats
from ober_health.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from ober_health.statefile import read_state

EXIT_OK, EXIT_DEGRADED, EXIT_NOT_RUNNING, EXIT_CONFIG = 0, 1, 2, 3
LOCAL_FRONTENDS = ("stats", "fe_stats", "health")  # not client traffic: ignored when waiting for sessions


def _age(updated_at: float) -> float:
    return max(0.0, time.time() - updated_at)


def _stale_after(state: dict[str, Any]) -> float:
    """A state older than this means the health program is hung or gone (watchdog territory)."""
    return max(2.0, 5 * float(state.get("interval", 1.0)))


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_status(config: Config) -> dict[str, Any]:
    """The state file plus what a reader must know: is it fresh, and the exit code it implies."""
    path = Path(config.health.state_file)
    try:
        state = read_state(path)
    except (OSError, ValueError) as exc:
        return {"running": False, "error": f"{path}: {exc}", "exit": EXIT_NOT_RUNNING, "vips": {}}
    age = _age(float(state.get("updated_at", 0)))
    running = age <= _stale_after(state) and _pid_alive(state.get("pid"))
    state["age"] = round(age, 3)
    state["running"] = running
    if not running:
        state["error"] = f"state is {age:.1f}s old and pid {state.get('pid')} is not updating it"
        state["exit"] = EXIT_NOT_RUNNING
    elif state.get("drained") or any(v.get("state") != "announced" for v in state["vips"].values()):
        state["exit"] = EXIT_DEGRADED
    else:
        state["exit"] = EXIT_OK
    return state


def _when(stamp: object) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def format_status(state: dict[str, Any]) -> str:
    lines = []
    if not state.get("running"):
        lines.append(f"health program NOT RUNNING: {state.get('error')}")
        lines.append("routes: ExaBGP keeps the last announced ones until its watchdog or the router drops them")
    else:
        lines.append(f"health program pid {state['pid']}, last check {state['age']:.1f}s ago, {state['loops']} loops")
    if state.get("drained"):
        lines.append(f"DRAINED: {state.get('drain_reason')}")
    if state.get("vips"):
        lines.append(f"{'VIP':<28} {'STATE':<10} {'SINCE':<21} {'UP/DOWN':<8} LAST CHECK")
        for prefix, vip in sorted(state["vips"].items()):
            result = "ok" if vip.get("last_ok") else "FAIL"
            counts = f"{vip.get('announces', 0)}/{vip.get('withdraws', 0)}"
            lines.append(
                f"{prefix:<28} {vip['state']:<10} {_when(vip.get('since')):<21} {counts:<8}"
                f" {result}: {vip.get('reason', '')}"
            )
    return "\n".join(lines)


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    state = load_status(config)
    state["version"] = __version__  # what is installed (the deploy restarts ExaBGP right after a change)
    if args.json:
        print(json.dumps(state, indent=1, sort_keys=True))
    else:
        print(f"ober {__version__}")
        print(format_status(state))
    return int(state["exit"])


def _drain_path(config: Config, runtime: bool) -> Path:
    return Path(config.health.drain_file if runtime else config.health.maintenance_file)


def client_sessions(config: Config) -> int | None:
    """Current client sessions on HAProxy's frontends; None when HAProxy is not there to ask."""
    rows, _ = read_stats(config.health.stats_socket, config.health.timeout)
    if rows is None:
        return None
    return sum(
        int(row.get("scur") or 0)
        for row in rows
        if row.get("svname") == "FRONTEND" and row.get("pxname") not in LOCAL_FRONTENDS
    )


def wait_until(predicate: Callable[[], bool], deadline: float, interval: float = 0.1) -> bool:
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def cmd_drain(config: Config, args: argparse.Namespace) -> int:
    """Withdraw every VIP (through the health program), then wait for client sessions to end."""
    path = _drain_path(config, args.runtime)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    path.write_text(f"drained at {_when(started)}: {args.reason}\n")
    print(f"drain: {path} written; the health program withdraws every VIP on its next check")
    if not args.wait:
        return EXIT_OK
    deadline = time.monotonic() + args.timeout

    def withdrawn() -> bool:
        state = load_status(config)
        if not state.get("running"):
            return True  # nothing announces for this node any more
        fresh = float(state.get("updated_at", 0)) >= started
        return fresh and all(v.get("state") == "withdrawn" for v in state["vips"].values())

    if not wait_until(withdrawn, deadline):
        print(f"drain: VIPs still announced after {args.timeout:g}s", file=sys.stderr)
        return EXIT_DEGRADED
    print("drain: every VIP withdrawn")

    def sessions_gone() -> bool:
        sessions = client_sessions(config)
        return sessions is None or sessions == 0

    if not wait_until(sessions_gone, deadline, interval=0.2):
        print(f"drain: {client_sessions(config)} client session(s) still open after {args.timeout:g}s", file=sys.stderr)
        return EXIT_DEGRADED
    print("drain: no client session left")
    return EXIT_OK


def cmd_undrain(config: Config, args: argparse.Namespace) -> int:
    path = _drain_path(config, args.runtime)
    try:
        path.unlink()
    except FileNotFoundError:
        print(f"undrain: {path} was not there (not drained)")
        return EXIT_OK
    print(f"undrain: {path} removed; VIPs come back after {config.health.rise} good checks")
    return EXIT_OK


def doctor_checks(config: Config, config_path: Path) -> list[tuple[bool, str, str]]:
    """(passed, what, hint) for each thing that must hold on a healthy node."""
    results: list[tuple[bool, str, str]] = [(True, f"config {config_path} is valid", "")]
    session = requests.Session()
    session.trust_env = False
    http = check_http(session, config.health.haproxy_url, config.health.timeout)
    results.append((http.ok, f"HAProxy health: {http.reason}", "systemctl status haproxy"))
    rows, error = read_stats(config.health.stats_socket, config.health.timeout)
    results.append(
        (
            rows is not None,
            f"stats socket {config.health.stats_socket}: {error or 'answers'}",
            "check `stats socket` in haproxy.cfg and its group",
        )
    )
    haproxy = shutil.which("haproxy")
    if haproxy and Path("/etc/haproxy/haproxy.cfg").exists():
        check = subprocess.run(
            [haproxy, "-c", "-q", "-f", "/etc/haproxy/haproxy.cfg"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        results.append(
            (check.returncode == 0, "haproxy -c /etc/haproxy/haproxy.cfg", (check.stderr or check.stdout).strip()[:300])
        )
    state = load_status(config)
    results.append(
        (
            bool(state.get("running")),
            "health program updates its state file",
            state.get("error", "") or "systemctl status exabgp",
        )
    )
    drained = any(Path(p).exists() for p in (config.health.maintenance_file, config.health.drain_file))
    results.append((not drained, "node is not drained", "ober undrain (if the maintenance is over)"))
    for prefix, vip in sorted(state.get("vips", {}).items()):
        results.append(
            (
                vip.get("state") == "announced",
                f"{prefix} announced ({vip.get('reason')})",
                "see `ober status` and the exabgp journal",
            )
        )
    return results


def cmd_doctor(config: Config, args: argparse.Namespace) -> int:
    failed = 0
    for passed, what, hint in doctor_checks(config, args.config):
        print(f"{'PASS' if passed else 'FAIL'}  {what}" + ("" if passed or not hint else f"\n      hint: {hint}"))
        failed += not passed
    return EXIT_OK if failed == 0 else EXIT_DEGRADED


def cmd_test_bgp(config: Config, args: argparse.Namespace) -> int:
    """One OPEN exchange per peer (ober_health.bgptest), one line each; 0 when every peer is established."""
    from ober_health import bgptest  # ExaBGP's message classes take 0.15 s to import: only for this command

    try:
        bgptest.check_timeout(args.timeout)
        targets = bgptest.targets_from(
            config,
            peer=args.peer,
            asn=args.asn,
            local_asn=args.local_asn,
            router_id=args.router_id,
            local_address=args.local_address,
        )
    except ValueError as exc:
        print(f"ober test-bgp: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    results = bgptest.probe_peers(targets, args.timeout, force=args.force)
    code = EXIT_OK if all(result.ok for result in results) else EXIT_DEGRADED
    if args.json:
        print(json.dumps({"peers": [r.as_dict() for r in results], "exit": code}, indent=1, sort_keys=True))
    else:
        print("\n".join(result.line() for result in results))
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ober", description="Operate one ober ingress node.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="health config (%(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="VIP states as the health program sees them")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    drain = sub.add_parser("drain", help="withdraw every VIP of this node (planned maintenance)")
    drain.add_argument("--wait", action="store_true", help="wait for the withdraw and for client sessions to end")
    drain.add_argument("--timeout", type=float, default=60.0, help="bound of --wait in seconds (%(default)s)")
    drain.add_argument("--runtime", action="store_true", help="runtime drain file (service stop), not maintenance")
    drain.add_argument("--reason", default="operator request", help="recorded in the drain file")
    drain.set_defaults(func=cmd_drain)
    undrain = sub.add_parser("undrain", help="end a drain; VIPs return after `rise` good checks")
    undrain.add_argument("--runtime", action="store_true", help="remove the runtime drain file instead")
    undrain.set_defaults(func=cmd_undrain)
    doctor = sub.add_parser("doctor", help="check everything a healthy node needs, with hints")
    doctor.set_defaults(func=cmd_doctor)
    bgp = sub.add_parser(
        "test-bgp",
        help="exchange OPENs with each BGP peer and say what it answered (ExaBGP and HAProxy untouched)",
        description="For each peer in health.toml (or --peer), connect from its local address, send the OPEN"
        " ExaBGP would send and report: established, notification (what the router said), mismatch, closed,"
        " refused, timed out or unreachable. A peer with an established session (ExaBGP's) is not probed"
        " unless --force. Exit 0 when every peer is established (or live), 1 otherwise, 3 for bad options.",
    )
    bgp.add_argument("--peer", metavar="ADDRESS", help="probe only this peer (any address with --asn)")
    bgp.add_argument("--timeout", type=float, default=5.0, help="bound per peer in seconds (%(default)s)")
    bgp.add_argument("--json", action="store_true", help="machine-readable output")
    bgp.add_argument("--force", action="store_true", help="probe a peer even while its session is established")
    bgp.add_argument("--asn", type=int, help="the peer's ASN (default: its [[peer]] asn)")
    bgp.add_argument("--local-asn", type=int, help="this node's ASN (default: [bgp] local_asn)")
    bgp.add_argument("--router-id", help="this node's router id (default: [bgp] router_id)")
    bgp.add_argument("--local-address", help="source address (default: the peer's local_address)")
    bgp.set_defaults(func=cmd_test_bgp)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for error in exc.errors:
            print(f"ober: {args.config}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    result: int = args.func(config, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
