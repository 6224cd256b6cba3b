"""What the fast lab shows a person: ECMP next hops, requests through each VIP, a node's HAProxy killed
and its next hops gone while requests keep working, the node back. Every step says how long it took."""

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

from lab.fastlab import FastLab
from lab.netns import netns_available
from lab.procs import run


@contextmanager
def step(title: str) -> Iterator[None]:
    print(f"\n== {title}", flush=True)
    started = time.monotonic()
    yield
    print(f"   ({time.monotonic() - started:.2f}s)", flush=True)


def show_routes(lab: FastLab) -> None:
    for vip in lab.vips:
        family = "-6" if ":" in vip.prefix else "-4"
        fib = run("ip", "-n", lab.router_ns, family, "route", "show", "exact", vip.prefix).stdout.strip()
        print(f"   {vip.prefix}: next hops {sorted(lab.nexthops(vip.prefix)) or 'NONE'}")
        for line in fib.splitlines():
            print(f"      | {line.strip()}")


def request_each(lab: FastLab) -> None:
    for vip in lab.vips:
        ok, body = lab.request(vip)
        print(f"   GET http://{vip.bind_host}:80/ -> {'200, served by ' + body if ok else 'FAILED: ' + body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab fast-demo", description=__doc__)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--router", choices=("bird", "frr"), default="bird")
    args = parser.parse_args(argv)
    ok, reason = netns_available()
    if not ok:
        print(f"the lab cannot run here: {reason}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ober-demo-"))
    lab = FastLab(workdir, prefix=f"dm{os.getpid() % 100000}", nodes=args.nodes, router=args.router)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    total = time.monotonic()
    try:
        with step(f"build the lab: {args.router.upper()} router + {args.nodes} nodes (HAProxy, ExaBGP, ober-health)"):
            lab.up()
            print("   " + ", ".join(f"{k} at {v:.2f}s" for k, v in lab.timings.items()))
        with step("the router's kernel FIB: one ECMP next hop per node and VIP"):
            show_routes(lab)
        with step("one request through each VIP"):
            request_each(lab)
        victim = next(iter(lab.nodes.values()))
        with step(f"SIGKILL HAProxy on {victim.name}: its next hops must leave"):
            started = time.monotonic()
            lab.supervisor.kill(victim.proc("haproxy"), signal.SIGKILL)
            others = [n for n in lab.nodes if n != victim.name]
            for vip in lab.vips:
                lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix, others))
            print(f"   every next hop of {victim.name} gone {time.monotonic() - started:.3f}s after the kill")
            show_routes(lab)
        with step("requests keep succeeding on the remaining nodes"):
            results = [lab.request(vip) for _ in range(5) for vip in lab.vips]
            failed = [body for ok, body in results if not ok]
            print(f"   {len(results) - len(failed)}/{len(results)} requests succeeded")
            request_each(lab)
        with step(f"restart HAProxy on {victim.name}: the health program announces again after `rise` checks"):
            started = time.monotonic()
            victim.start_haproxy()
            for vip in lab.vips:
                lab.wait_nexthops(vip.prefix, lab.node_ips(vip.prefix))
            print(f"   back {time.monotonic() - started:.3f}s after the restart")
            show_routes(lab)
    except KeyboardInterrupt:
        print("\ninterrupted: tearing down", file=sys.stderr)
        return 130
    finally:
        with step("tear down: stop every process the lab started, delete its namespaces"):
            lab.down()
            print(f"   leftover processes: {lab.leftovers or 'none'}")
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"\ntotal {time.monotonic() - total:.2f}s")
    return 0 if not failed else 1
