"""The README's main command: a fleet of real systemd nodes, deployed by pyinfra, failing and healing in front of you.

    python -m lab demo            (wired by the lead; this module is `main()`)

1. builds the lab: Debian images (once, cached), a BGP router, 2 Ceph RGW gateways (radosgw), 3 nodes
   booted with systemd
2. deploys the fleet with the operator's command `pyinfra inventories/lab.py deploy.py`
3. shows the router's next hops per VIP and one request through each VIP
4. an S3 client (the aws CLI) writes a 16 MiB object through the VIP by the site's name, TLS verified
   against the lab CA, and reads it back
5. kills one node's HAProxy (`systemctl kill -s KILL haproxy`) while a request loop and boto3 transfers
   keep going: its next hops leave, systemd restarts HAProxy, the next hops come back; what the clients
   saw, and the object read back once more
6. tears everything down, also on Ctrl-C, and says how long each step took
"""

from __future__ import annotations

import argparse
import hashlib
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

from lab.fleet import REPO, VIPS, Fleet, fleet_requirements_missing, vip_address
from lab.procs import run
from lab.rgw import DOMAIN
from lab.rootfs import DEFAULT_SUITE, NODE_SUITES
from lab.s3client import MIB, pattern

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
    parser.add_argument(
        "--release", choices=NODE_SUITES, default=DEFAULT_SUITE, help="Debian release of the nodes (default bookworm)"
    )
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
    fleet = Fleet(workdir, prefix=prefix, nodes=args.nodes, router=args.router, bfd=args.bfd, suite=args.release)
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
    with step(
        f"lab: router ({fleet.router_kind}), {fleet.rgw.count} Ceph RGW gateways, {fleet.node_count}"
        f" Debian ({fleet.suite}) nodes booted with systemd"
    ):
        fleet.up()
        phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in fleet.timings.items())
        say(f"   {phases}")
        say(f"   RGW: {fleet.rgw.version(fleet.rgw_flavors[0])}; ober_backends = {fleet.rgw.hostlist!r}")
        for gateway in fleet.rgw.gateways:
            say(f"   {gateway.fqdn}: {gateway.host.ipv4} {gateway.host.ipv6} (radosgw, namespace {gateway.host.name})")
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
            f"   to rerun it yourself: OBER_LAB_FLEET={fleet.spec_path} ip netns exec {fleet.controller} unshare -m"
            f" sh -c 'mount --bind {fleet.hosts_file} /etc/hosts && .venv/bin/pyinfra inventories/lab.py deploy.py'"
        )

    with step("routes: every VIP has one ECMP next hop per node at the router"):
        fleet.wait_routes(timeout=60)
        show_nexthops(fleet)

    with step("requests: one anonymous GET through each VIP, from the router's side"):
        for vip in VIPS:
            ok, body = fleet.request(vip)
            answer = f"RGW answered {body[:60]}..." if ok else f"FAILED: {body}"
            say(f"   GET http://{vip_address(vip)}/ -> {answer}")

    data = fleet.workdir / "demo-object.bin"
    data.write_bytes(pattern(16 * MIB, "demo01"))
    with step(f"S3: the aws CLI writes and reads a 16 MiB object through {fleet.s3_endpoint(DOMAIN)} (TLS verified)"):
        aws_roundtrip(fleet, data)

    victim = fleet.nodes[next(iter(fleet.nodes))]
    others = [name for name in fleet.nodes if name != victim.name]
    with step(f"failure: `systemctl kill -s KILL haproxy` on {victim.name}, HTTP and S3 clients running meanwhile"):
        client = fleet.start_client(VIPS[0], duration=8.0)
        s3 = fleet.start_s3(
            "traffic",
            "--bucket",
            "demo",
            "--size",
            str(16 * MIB),
            "--duration",
            "8",
            endpoint=fleet.s3_endpoint(VIPS[0]),
        )
        time.sleep(1.5)
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
        traffic = fleet.s3_result(s3)
        ops = traffic["ops"]
        failed = [op for op in ops if op["error"]]
        wrong = [op for op in ops if not op["error"] and op["data_ok"] is not True]
        say(
            f"   boto3 through {VIPS[0]} (standard retries): {sum(op['op'] == 'upload' for op in ops)} uploads and"
            f" {sum(op['op'] == 'download' for op in ops)} downloads of 16 MiB, {len(failed)} failed,"
            f" {len(wrong)} with wrong bytes; retried attempts: {traffic['failed_attempts'] or 'none'}"
        )
        for op in failed[:5]:
            say(f"      failed: {op['op']} at {op['start']}s: {op['error']}")

    with step("S3 after the failure: the aws CLI reads the object again"):
        aws_roundtrip(fleet, data, upload=False)
    return 0


def aws_roundtrip(fleet: Fleet, data: Path, upload: bool = True) -> None:
    """`aws s3 cp` up (optionally) and down through the site's S3 name; prints what it did and the digests."""
    config = fleet.workdir / "aws-config"  # one PUT/GET per object: the lab's RGW Reef mangles multipart objects
    config.write_text(
        "[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 5GB\n    addressing_style = path\n"
    )
    aws = str(Path(sys.executable).parent / "aws")
    endpoint = ["--endpoint-url", fleet.s3_endpoint(DOMAIN)]
    back = data.with_suffix(".back")
    commands = (
        [["s3", "mb", "s3://demo"], ["s3", "cp", "--no-progress", str(data), "s3://demo/object"]] if upload else []
    )
    commands.append(["s3", "cp", "--no-progress", "s3://demo/object", str(back)])
    for command in commands:
        result = fleet.client_run(aws, *endpoint, *command, AWS_CONFIG_FILE=str(config))
        output = (result.stdout or result.stderr).strip()
        if result.returncode != 0 and "BucketAlreadyOwnedByYou" not in output:
            raise RuntimeError(f"aws {' '.join(command)} failed: {output}")
        say(f"   $ aws {' '.join(endpoint)} {' '.join(command)}\n     {output.splitlines()[-1] if output else ''}")
    sent, got = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (data, back))
    say(f"   sha256 written {sent[:16]}..., read back {got[:16]}...: {'same bytes' if sent == got else 'DIFFERENT'}")
    if sent != got:
        raise RuntimeError("the object read back differs from the one written")


if __name__ == "__main__":
    sys.exit(main())
