"""Remove everything ober put on a node: `pyinfra inventories/prod.py tasks/uninstall.py`.

The routes go first (ExaBGP is stopped with its drain), then ober's units, files and account. HAProxy
stays installed (it is the distribution's package) with the configuration it had before ober.
"""

from pyinfra.operations import files, server, systemd

from ober_health.paths import PATHS

server.shell(
    name="stop and disable ober's services (ExaBGP drains first)",
    commands=[
        "for unit in exabgp.service ober-bfdd.service ober-vips.service; do"
        " if systemctl cat $unit >/dev/null 2>&1; then systemctl disable --now $unit || true; fi; done"
    ],
)
for path in (
    PATHS.exabgp_unit,
    PATHS.vips_unit,
    PATHS.bfd_unit,
    PATHS.bfd_config,
    PATHS.haproxy_dropin,
    PATHS.sysctl_file,
    PATHS.watchdog_file,
    PATHS.frontend_acl,
    PATHS.tmpfiles_file,
    PATHS.haproxy_config + ".ober-new",
):
    files.file(name=f"remove {path}", path=path, present=False)
files.link(name=f"remove {PATHS.cli_link}", path=PATHS.cli_link, present=False)
for directory in (PATHS.etc, PATHS.prefix, PATHS.runtime_dir, PATHS.certs_dir):
    files.directory(name=f"remove {directory}", path=directory, present=False)
server.shell(
    name="restore the distribution's haproxy.cfg and restart HAProxy",
    commands=[
        f"if [ -e {PATHS.haproxy_config}.ober-orig ]; then mv -f {PATHS.haproxy_config}.ober-orig"
        f" {PATHS.haproxy_config}; fi",
        "systemctl daemon-reload",
        "if systemctl is-active -q haproxy.service; then systemctl restart haproxy.service; fi",
    ],
)
server.shell(
    name="remove the VIPs and the dummy interface",
    commands=[
        f"if [ -f {PATHS.vips_applied} ]; then while read -r dev prefix; do"
        f' ip address del "$prefix" dev "$dev" 2>/dev/null || true; done < {PATHS.vips_applied};'
        f" rm -f {PATHS.vips_applied}; fi",
        f"if ip link show {PATHS.vip_interface} >/dev/null 2>&1; then ip link del {PATHS.vip_interface}; fi",
    ],
)
server.user(name=f"remove user {PATHS.user}", user=PATHS.user, present=False)
server.group(name=f"remove group {PATHS.user}", group=PATHS.user, present=False)
systemd.daemon_reload(name="systemd forgets ober's units")
