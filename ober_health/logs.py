"""`ober logs`: the node's logs are in the journal; this names the units and lines of each service.

- bgp: exabgp.service, ExaBGP's own lines (sessions, OPENs, NOTIFICATIONs, its start and stop)
- health: exabgp.service too: ober-health is ExaBGP's API process and writes to the stderr it inherits, so
  its lines are in that unit's journal, each starting with `ober-health[PID]:` (a pattern tells them apart)
- haproxy: haproxy.service (its start, reloads, alerts, server state changes, and the traffic log it
  sends to /dev/log)
- all: every unit ober runs (the two above, the VIPs' unit, bfdd and ober-ocsp when deployed)

The command is journalctl's: `-n`, `-f` and the exit code are its own.
"""

from __future__ import annotations

EXABGP_UNIT = "exabgp.service"
HAPROXY_UNIT = "haproxy.service"
OTHER_UNITS = ("ober-vips.service", "ober-bfdd.service", "ober-ocsp.service")
HEALTH_PREFIX = "ober-health"  # ober_health.main's log format: `ober-health[PID]: message`

SERVICES = ("all", "bgp", "health", "haproxy")


def journalctl_argv(service: str, lines: int, follow: bool, since: str | None = None) -> list[str]:
    """The journalctl command line of `ober logs --service SERVICE -n LINES [-f] [--since SINCE]`."""
    if service not in SERVICES:
        raise ValueError(f"--service: {service!r} is not one of {', '.join(SERVICES)}")
    argv = ["journalctl", "--no-pager", "--lines", str(lines)]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", since]
    if service == "all":
        units: tuple[str, ...] = (EXABGP_UNIT, HAPROXY_UNIT, *OTHER_UNITS)
    elif service == "haproxy":
        units = (HAPROXY_UNIT,)
    else:
        units = (EXABGP_UNIT,)
    for unit in units:
        argv += ["--unit", unit]
    if service == "health":
        argv += ["--grep", f"^{HEALTH_PREFIX}\\[", "--case-sensitive=true"]
    elif service == "bgp":
        # PCRE2 negative look-ahead: journalctl has no inverted match
        argv += ["--grep", f"^(?!{HEALTH_PREFIX}\\[)", "--case-sensitive=true"]
    return argv
