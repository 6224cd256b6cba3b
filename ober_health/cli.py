"""`ober`: the operator's view of one ingress node - status, drain, undrain, doctor, test-bgp, logs.

Everything here reads what the health program knows (its status endpoint or state file, see
ober_health.status), the same drain files it watches, and HAProxy's own stats socket, so the CLI never
disagrees with what is announced and never needs systemd or D-Bus (the stop path runs `ober drain` while
the machine is going down). Exit codes are meant for scripts:

    status: 0 every VIP announced, acknowledged by ExaBGP and carried by an established BGP session of its
            family; 1 degraded (withdrawn, unacknowledged, drained, no session, ExaBGP not answering);
            2 health program not running or hung; 3 config unusable; 4 running but its state cannot be read
    drain --wait: 0 withdrawn (ExaBGP acknowledged); client sessions then waited for while they make
            progress, and those left are reported (let go); 1 the withdraw not confirmed in time
    drain, undrain: 1 when the drain file cannot be written or removed (a directory, a permission)
    doctor: 0 nothing failed (warnings do not fail), 1 a check failed, 3 config unusable
    logs: journalctl's own
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ober_health import __version__
from ober_health.checks import haproxy_command, read_stats
from ober_health.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load_config
from ober_health.drain import SETTLE_SECONDS, STALL_SECONDS, Sample, total_bytes_out, wait_sessions
from ober_health.ocsp import FETCH_TIMEOUT, update
from ober_health.paths import PATHS
from ober_health.stats import summarize
from ober_health.status import (
    EXIT_CONFIG,
    EXIT_DEGRADED,
    EXIT_NOT_RUNNING,
    EXIT_OK,
    EXIT_UNKNOWN,
    format_report,
    health_processes,
    load_report,
    to_json,
    when,
)

__all__ = ["EXIT_CONFIG", "EXIT_DEGRADED", "EXIT_NOT_RUNNING", "EXIT_OK", "EXIT_UNKNOWN", "main"]


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    report = load_report(config, args.config, with_haproxy=True)
    # what is installed (the deploy restarts ExaBGP right after a change)
    print(to_json(report, version=__version__) if args.json else f"ober {__version__}\n{format_report(report)}")
    return report.exit


def _drain_path(config: Config, runtime: bool) -> Path:
    return Path(config.health.drain_file if runtime else config.health.maintenance_file)


def client_sample(config: Config) -> Sample | None:
    """Client sessions on HAProxy's frontends and the bytes it sent so far; None when HAProxy is not there."""
    rows, _ = read_stats(config.health.stats_socket, config.health.timeout)
    if rows is None:
        return None
    try:
        sent = total_bytes_out(haproxy_command(config.health.stats_socket, "show info", config.health.timeout))
    except OSError:  # TimeoutError included: sessions alone then
        sent = 0
    return Sample(summarize(rows).total_sessions, sent)


def wait_until(predicate: Callable[[], bool], deadline: float, interval: float = 0.1) -> bool:
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _not_a_file(path: Path) -> str:
    """Why `path` cannot be a drain file ober writes and removes ("" when it can)."""
    if path.is_dir():
        return f"{path} is a directory, not a drain file: remove it yourself (rmdir) if the maintenance is over"
    return ""


def cmd_drain(config: Config, args: argparse.Namespace) -> int:
    """Withdraw every VIP (through the health program); with --wait, confirm it, let the router converge,
    then wait for client sessions while they make progress (ober_health.drain) and report what is let go."""
    path = _drain_path(config, args.runtime)
    problem = _not_a_file(path)
    if problem:
        print(f"drain: {problem}", file=sys.stderr)
        return EXIT_DEGRADED
    started = time.time()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"drained at {when(started)}: {args.reason}\n")
    except OSError as exc:
        print(f"drain: cannot write {path}: {exc.strerror or exc}; nothing was drained", file=sys.stderr)
        return EXIT_DEGRADED
    print(f"drain: {path} written; the health program withdraws every VIP on its next check")
    if not args.wait:
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    why = ["no state yet"]
    gone_since: list[float] = []

    def withdrawn() -> bool:
        """A check loop that began after the drain file was written withdrew every VIP, and ExaBGP said done."""
        report = load_report(config, args.config)
        state = report.state
        if not report.running or state is None:
            why[0] = report.error
            if report.exit == EXIT_NOT_RUNNING and not health_processes(args.config):
                gone_since.append(time.monotonic())
                if gone_since[-1] - gone_since[0] >= 3.0:  # not a respawn in progress: nobody to ask
                    raise _Unconfirmed(f"{report.error}: cannot confirm the withdraw")
            else:
                gone_since.clear()
            return False
        gone_since.clear()
        if (state["round_started_at"] or 0.0) < started:
            why[0] = "no check loop since the drain file was written"
            return False
        waiting = [p for p, v in state["vips"].items() if v["state"] != "withdrawn" or v["acked"] is not True]
        why[0] = f"not yet withdrawn and acknowledged by ExaBGP: {', '.join(sorted(waiting))}"
        return not waiting

    try:
        confirmed = wait_until(withdrawn, deadline)
    except _Unconfirmed as exc:
        print(f"drain: {exc}", file=sys.stderr)
        return EXIT_DEGRADED
    if not confirmed:
        print(f"drain: withdraw not confirmed after {args.timeout:g}s: {why[0]}", file=sys.stderr)
        return EXIT_DEGRADED
    print(f"drain: every VIP withdrawn (ExaBGP acknowledged) after {time.time() - started:.1f}s")
    settle = max(0.0, min(args.settle, deadline - time.monotonic()))
    time.sleep(settle)  # the router takes the next hop out of its FIB; no new client after this
    waited = wait_sessions(lambda: client_sample(config), deadline, stall=args.stall)
    print(f"drain: {waited.line(args.stall)}")
    return EXIT_OK


class _Unconfirmed(Exception):
    pass


def cmd_undrain(config: Config, args: argparse.Namespace) -> int:
    path = _drain_path(config, args.runtime)
    problem = _not_a_file(path)
    if problem:
        print(f"undrain: {problem}", file=sys.stderr)
        return EXIT_DEGRADED
    try:
        path.unlink()
    except FileNotFoundError:
        print(f"undrain: {path} was not there (not drained)")
        return EXIT_OK
    except OSError as exc:
        print(f"undrain: cannot remove {path}: {exc.strerror or exc}; the node stays drained", file=sys.stderr)
        return EXIT_DEGRADED
    print(f"undrain: {path} removed; VIPs come back after {config.health.rise} good checks")
    return EXIT_OK


def cmd_doctor(config: Config, args: argparse.Namespace) -> int:
    """Every check of ober_health.doctor, grouped; 0 when nothing failed (warnings do not fail), 1 otherwise."""
    from ober_health import doctor

    checks = doctor.Doctor(config, args.config).run()
    code = doctor.exit_code(checks)
    if args.json:
        print(json.dumps({"checks": [c.as_json() for c in checks], "exit": code}, indent=1, sort_keys=True))
    else:
        print(doctor.format_checks(checks))
    return code


def cmd_logs(args: argparse.Namespace) -> int:
    """journalctl of the units of one service (ober_health.logs); its output and exit code are journalctl's."""
    from ober_health.logs import journalctl_argv

    argv = journalctl_argv(args.service, args.lines, args.follow, args.since)
    if shutil.which(argv[0]) is None:
        print("ober logs: journalctl not found: the logs are in the journal of a systemd node", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # Ctrl-C and the pager's signals go straight to journalctl


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
    status = sub.add_parser("status", help="VIPs, BGP sessions and ExaBGP as the health program sees them")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    drain = sub.add_parser("drain", help="withdraw every VIP of this node (planned maintenance)")
    drain.add_argument(
        "--wait",
        action="store_true",
        help="wait for the withdraw (ExaBGP's ack), let the router converge (--settle), then for client sessions"
        " while they make progress; sessions that made none for --stall seconds (their clients now reach another"
        " node) or are still open at --timeout are let go and reported; exit 0 once the withdraw is confirmed",
    )
    drain.add_argument("--timeout", type=float, default=60.0, help="bound of --wait in seconds (%(default)s)")
    drain.add_argument(
        "--settle", type=float, default=SETTLE_SECONDS, help="seconds after the ack for the router (%(default)s)"
    )
    drain.add_argument(
        "--stall",
        type=float,
        default=STALL_SECONDS,
        help="let sessions go after this many seconds without one ending or a byte moving (%(default)s)",
    )
    drain.add_argument("--runtime", action="store_true", help="runtime drain file (service stop), not maintenance")
    drain.add_argument("--reason", default="operator request", help="recorded in the drain file")
    drain.set_defaults(func=cmd_drain)
    undrain = sub.add_parser("undrain", help="end a drain; VIPs return after `rise` good checks")
    undrain.add_argument("--runtime", action="store_true", help="remove the runtime drain file instead")
    undrain.set_defaults(func=cmd_undrain)
    doctor = sub.add_parser(
        "doctor",
        help="check everything a healthy node needs, grouped, with a hint naming the cause",
        description="Checks, grouped: node prerequisites (AES-NI, NIC queues vs vCPUs, hardware watchdog), kernel"
        " tuning in force, HAProxy (running, `haproxy -c` with its own words, stats socket), certificates"
        " (present, key match, expiry), backends (servers UP/total per VIP), the health program, BGP sessions."
        " A check whose dependency is down is SKIPped, so one fault is one FAIL. Exit 0 when nothing FAILs"
        " (WARNs do not fail), 1 otherwise, 3 when health.toml is unusable.",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)
    logs = sub.add_parser(
        "logs",
        help="this node's logs from the journal, by service",
        description="journalctl of ober's units: bgp = ExaBGP's lines (exabgp.service), health = ober-health's"
        " lines (ExaBGP's API process: in exabgp.service's journal, starting `ober-health[PID]:`), haproxy ="
        " haproxy.service, all = every unit ober runs.",
    )
    logs.add_argument("--service", choices=("all", "bgp", "health", "haproxy"), default="all", help="(%(default)s)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="last N lines (%(default)s)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--since", help="journalctl's --since (e.g. '10 min ago', '2025-01-01 12:00')")
    logs.set_defaults(func=cmd_logs, needs_config=False)
    ocsp = sub.add_parser(
        "ocsp-update",
        help="fetch each TLS bundle's OCSP response and staple it in the running HAProxy (ober_ocsp_stapling)",
        description="For each bundle of haproxy.cfg's `crt` lines that has a <bundle>.ocsp file (the deploy writes"
        " it when ober_ocsp_stapling is on): when the stored response is past half its validity (or --force), ask"
        " the responder the certificate names, verify the answer against the issuer, hand it to HAProxy over its"
        " admin socket (`set ssl ocsp-response`, no reload) and store it in <bundle>.ocsp (a restart staples it at"
        " once). A failed fetch keeps the last response. Run by ober-ocsp.timer. Exit 0 when every bundle is"
        " current, 1 when one failed.",
    )
    ocsp.add_argument("--force", action="store_true", help="fetch every response, due or not")
    ocsp.add_argument(
        "--timeout", type=float, default=FETCH_TIMEOUT, help="seconds for each responder's answer (%(default)s)"
    )
    ocsp.add_argument("--haproxy-config", default=PATHS.haproxy_config, help="(%(default)s)")
    ocsp.add_argument("--admin-socket", default=PATHS.admin_socket, help="(%(default)s)")
    ocsp.set_defaults(func=cmd_ocsp_update, needs_config=False)
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


def cmd_ocsp_update(args: argparse.Namespace) -> int:
    return update(Path(args.haproxy_config), args.admin_socket, force=args.force, timeout=args.timeout)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_config", True):  # logs: wanted most when the config is broken
        code: int = args.func(args)
        return code
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
