"""Kernel tuning (sysctl.d) and the hardware watchdog.

Inside a container most of these keys are the host's and not writable: they are written commented out
with a notice, so the same deploy runs on bare metal, VMs and the lab's systemd-nspawn nodes.
"""

import logging

from pyinfra.context import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from ober_deploy.kernel import SYSCTLS, proc_path
from ober_deploy.plan import current_settings
from ober_deploy.render import MANAGED
from ober_health.paths import PATHS

ober = current_settings()
logger = logging.getLogger("pyinfra")

if ober.kernel_tuning:
    probe = "; ".join(f"[ -w {proc_path(key)} ] && echo {key}" for key, _, _ in SYSCTLS) + "; true"
    writable = set((host.get_fact(Command, probe) or "").split())
    skipped = [key for key, _, _ in SYSCTLS if key not in writable]
    if skipped:
        container = host.get_fact(Command, "systemd-detect-virt --container 2>/dev/null || true") or "none"
        logger.warning(
            f"{host.name}: kernel tuning: {len(skipped)} of {len(SYSCTLS)} keys not writable "
            f"(container: {container}); written commented out: {', '.join(skipped)}"
        )
    sysctl_file = files.template(
        name="kernel tuning (sysctl.d)",
        src="templates/sysctl.conf.j2",
        dest=PATHS.sysctl_file,
        mode="644",
        managed=MANAGED,
        settings=[(key, value, why, key in writable) for key, value, why in SYSCTLS],
    )
    server.shell(
        name="apply kernel tuning",
        commands=[f"sysctl -q -p {PATHS.sysctl_file}"],
        _if=sysctl_file.did_change,
    )
else:
    files.file(name="no kernel tuning (ober_kernel_tuning=False)", path=PATHS.sysctl_file, present=False)

has_watchdog = (host.get_fact(Command, "test -c /dev/watchdog && echo yes || echo no") or "").strip() == "yes"
watchdog = (
    files.template(
        name="hardware watchdog for systemd (RuntimeWatchdogSec)",
        src="templates/watchdog.conf.j2",
        dest=PATHS.watchdog_file,
        mode="644",
        managed=MANAGED,
        runtime_watchdog="30s",
    )
    if has_watchdog
    else files.file(name="no /dev/watchdog: no RuntimeWatchdogSec", path=PATHS.watchdog_file, present=False)
)
server.shell(
    name="systemd picks up the watchdog setting", commands=["systemctl daemon-reexec"], _if=watchdog.did_change
)
