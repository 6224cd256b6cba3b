"""Files the deploy writes on a node that the node's own tools read (`ober doctor` compares them with what is
in force): one definition for the deploy (ober_deploy.paths) and for the node."""

from __future__ import annotations

HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
SYSCTL_FILE = "/etc/sysctl.d/60-ober.conf"  # the kernel tuning the deploy sets (ober_kernel_tuning)
WATCHDOG_FILE = "/etc/systemd/system.conf.d/60-ober-watchdog.conf"  # RuntimeWatchdogSec, when /dev/watchdog
