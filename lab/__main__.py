"""`python -m lab demo` (the README's main command: the fleet on booted systemd nodes, deployed by pyinfra)
and `python -m lab fast-demo` (the namespace-only lab: seconds instead of a minute)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    commands = ("demo", "fast-demo")
    if not argv or argv[0] not in commands:
        print(f"usage: python -m lab {{{','.join(commands)}}} [options]", file=sys.stderr)
        return 2
    if argv[0] == "demo":
        from lab import fleet_demo

        return fleet_demo.main(argv[1:])
    from lab import fast_demo

    return fast_demo.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
