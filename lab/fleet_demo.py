"""The README's main command: a fleet of real systemd nodes, deployed by pyinfra, failing and healing in front of you.

    python -m lab demo            (wired by the lead; this module is `main()`)

1. builds the lab: a Debian image (once, cached), a BGP router, 3 nodes booted with systemd
2. deploys the fleet with the operator's command `pyinfra inventories/lab.py deploy.py`
3. shows the router's next hops per VIP and one request through each VIP
4. kills one node's HAProxy (`systemctl kill -s KILL haproxy`): its next hops leave while a request loop
   keeps going, systemd restarts HAProxy, the next hops come back
5. tears everything down, also on Ctrl-C, and says how long each step took
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from lab.fleet import REPO, VIPS, Fleet, fleet_requirements_missing
from lab.procs import run

STEP_TIMES: list[tuple[str, float]] = []


def say(text: str = "") -> None:
    print(text, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    say(f"\n== {title}")
    started = time.monotonic()
    try:
        yield
    finally:
        seconds = time.monotonic() - started
        STEP_TIMES.append((title, seconds))
        say(f"   ({seconds:.1f}s)")


def show_nexthops(fleet: Fleet) -> None:
    for vip in VIPS:
        family = "-6" if ":" in vip else "-4"
        route = run("ip", "-n", fleet.router_ns, family, "route", "show", vip, check=False).stdout.strip()
        say(f"   router FIB {vip}:")
        for line in (route or "(no route)").splitlines():
            say(f"      {line.strip()}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", choices=("bird", "frr"), default="bird", help="the site router (default bird)")
    parser.add_argument("--nodes", type=int, default=3, help="number of ingress nodes (default 3)")
    parser.add_argument("--bfd", action="store_true", help="BFD between router and nodes")
    parser.add_argument("--keep-logs", action="store_true", help="keep the lab's work directory (logs) afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = fleet_requirements_missing()
    if reason:
        say(f"cannot run the fleet demo here: {reason}")
        return 2
    if not (REPO / "deploy.py").exists():
        say("cannot run the fleet demo: deploy.py is missing from the repository")
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` tears down like Ctrl-C does
    workdir = Path(tempfile.mkdtemp(prefix="ober-demo-", dir="/var/tmp"))
    prefix = f"od{os.getpid() % 100000}"
    fleet = Fleet(workdir, prefix=prefix, nodes=args.nodes, router=args.router, bfd=args.bfd)
    started = time.monotonic()
    code = 1
    try:
        code = run_demo(fleet)
    except KeyboardInterrupt:
        say("\ninterrupted: tearing down")
        code = 130
    except Exception as error:
        say(f"\nFAILED: {error}\n(logs in {workdir})")
        args.keep_logs = True
    finally:
        with step("teardown: nodes powered off, router stopped, namespaces and copies removed"):
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave half a lab
            fleet.down()
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        say("\n== time per step")
        for title, seconds in STEP_TIMES:
            say(f"   {seconds:7.1f}s  {title}")
        say(f"   {time.monotonic() - started:7.1f}s  total")
    return code


def run_demo(fleet: Fleet) -> int:
    with step(f"lab: router ({fleet.router_kind}), {fleet.node_count} Debian nodes booted with systemd"):
        fleet.up()
        phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in fleet.timings.items())
        say(f"   {phases}")
        for node in fleet.nodes.values():
            say(f"   {node.name}: {node.host.ipv4} {node.host.ipv6} (ssh root@{node.host.ipv4})")

    with step("deploy: pyinfra -y inventories/lab.py deploy.py (over SSH, from the controller namespace)"):
        result = fleet.deploy()
        for host in sorted(fleet.nodes):
            say(f"   {host}: {result.changed.get(host, 0)} operations changed, {result.errors.get(host, 0)} failed")
        if not result.ok:
            say(result.output[-3000:])
            raise RuntimeError("the deploy failed")
        say(
            f"   to rerun it yourself: OBER_LAB_FLEET={fleet.spec_path} ip netns exec {fleet.controller} "
            ".venv/bin/pyinfra inventories/lab.py deploy.py"
        )

    with step("routes: every VIP has one ECMP next hop per node at the router"):
        fleet.wait_routes(timeout=60)
        show_nexthops(fleet)

    with step("requests: one through each VIP, from the router's side"):
        for vip in VIPS:
            ok, body = fleet.request(vip)
            say(f"   GET {vip.split('/')[0]} -> {'RGW answered' if ok else 'FAILED: ' + body}")

    victim = fleet.nodes[next(iter(fleet.nodes))]
    others = [name for name in fleet.nodes if name != victim.name]
    with step(f"failure: `systemctl kill -s KILL haproxy` on {victim.name}, a request loop running meanwhile"):
        client = fleet.start_client(VIPS[0], duration=8.0)
        time.sleep(1.0)
        killed = time.monotonic()
        victim.ssh("systemctl", "kill", "-s", "KILL", "haproxy.service")
        for vip in VIPS:
            fleet.wait_nexthops(vip, fleet.node_ips(vip, others), timeout=15)
        say(f"   {victim.name}'s next hops left the router {time.monotonic() - killed:.2f}s after the kill:")
        show_nexthops(fleet)
        fleet.wait_routes(timeout=60)
        say(f"   systemd restarted HAProxy; next hops back {time.monotonic() - killed:.2f}s after the kill:")
        show_nexthops(fleet)
        loop = fleet.client_result(client)
        say(f"   request loop through {VIPS[0]}: {loop.ok} answered, {loop.failed} failed")
        for error in loop.errors[:5]:
            say(f"      failed: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
