"""Validate an inventory without touching a host: `python -m ober_deploy.check INVENTORY [--data KEY=VALUE]`.

The same validation the deploy runs first (ober_deploy.settings.validate_inventory over pyinfra's own
inventory loading: the inventory file, group_data/, `--data` parsed as pyinfra parses it), without SSH:
usable before the nodes exist or while they are unreachable, and in CI for an inventory's pull request.
Names (backends, whitelist hostlists) are resolved on this machine, as the deploy resolves them.

Prints every problem, one line each (`host: key: value problem`), and exits 1; or one line per host and
exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ober_deploy.settings import InventoryError, NodeSettings, validate_inventory


def parse_data(pairs: list[str]) -> dict[str, Any]:
    """`--data KEY=VALUE` exactly as pyinfra's command line reads it (true/false, integers, JSON, text)."""
    from pyinfra_cli.util import parse_cli_arg  # type: ignore[import-untyped]

    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--data {pair!r}: expected KEY=VALUE")
        data[key] = parse_cli_arg(text)
    return data


def check(inventory_path: str, data: dict[str, Any], cwd: str) -> tuple[list[str], dict[str, NodeSettings]]:
    """Every problem of every host of the inventory (none: each host's settings), without connecting."""
    # pyinfra's CLI loader (it patches gevent on import: harmless here, this process only validates)
    from pyinfra.api.state import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory  # type: ignore[import-untyped]

    from ober_deploy.plan import inventory_hosts

    state = State(check_for_changes=False)  # what pyinfra's CLI sets before it reads an inventory file
    state.cwd = cwd
    ctx_state.set(state)  # type: ignore[no-untyped-call]
    inventory = make_inventory(inventory_path, override_data=data or None, cwd=cwd)
    hosts = inventory_hosts(inventory)
    if not hosts:
        return [f"{inventory_path}: no hosts"], {}
    try:
        return [], validate_inventory(hosts)
    except InventoryError as error:
        return error.problems, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ober_deploy.check",
        description="Validate an ober inventory as the deploy does, without connecting to any host.",
    )
    parser.add_argument("inventory", help="the inventory file pyinfra would be given (e.g. inventories/prod.py)")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="as pyinfra's --data")
    args = parser.parse_args(argv)
    if not os.path.exists(args.inventory):
        print(f"ober_deploy.check: {args.inventory}: no such inventory file", file=sys.stderr)
        return 2
    try:
        data = parse_data(args.data)
    except ValueError as error:
        print(f"ober_deploy.check: {error}", file=sys.stderr)
        return 2
    problems, fleet = check(args.inventory, data, os.getcwd())
    for line in problems:
        print(line)
    if problems:
        print(f"{args.inventory}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    for name, node in fleet.items():
        vips = ", ".join(vip.prefix for vip in node.vips)
        print(f"{name}: OK (AS{node.local_asn}, {len(node.peers)} peer(s), VIPs {vips}, {len(node.backends)} backends)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
