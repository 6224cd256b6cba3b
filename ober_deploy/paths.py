"""Where ober puts things on a node: one place, so templates, tasks, the uninstall and tests agree."""

from __future__ import annotations

from dataclasses import dataclass

from ober_health.nodefiles import HAPROXY_CONFIG, SYSCTL_FILE, WATCHDOG_FILE

MANAGED = "Managed by ober's pyinfra deploy: local changes are overwritten by the next deploy."


@dataclass(frozen=True)
class NodePaths:
    user: str = "ober"  # ExaBGP and ober-health run as this unprivileged user
    prefix: str = "/opt/ober"
    venv: str = "/opt/ober/venv"  # a symlink to the venv of the installed wheel set, under `venvs`
    cli_link: str = "/usr/local/bin/ober"  # `ober` on the operator's PATH: -> <venv>/bin/ober
    venvs: str = "/opt/ober/venvs"  # one venv per wheel set, named after its digest
    wheels: str = "/opt/ober/wheels"
    etc: str = "/etc/ober"
    health_config: str = "/etc/ober/health.toml"
    exabgp_config: str = "/etc/ober/exabgp.conf"
    exabgp_env: str = "/etc/ober/exabgp.env"  # ExaBGP's own settings (EXABGP_ENVFILE), read at its start
    maintenance_file: str = "/etc/ober/maintenance"
    runtime_dir: str = "/run/ober"
    drain_file: str = "/run/ober/drain"
    state_file: str = "/run/ober/state.json"
    haproxy_config: str = HAPROXY_CONFIG
    certs_dir: str = "/etc/haproxy/certs"
    frontend_acl: str = "/etc/haproxy/ober-frontend.acl"
    admin_socket: str = "/run/haproxy/admin.sock"
    ober_socket: str = "/run/haproxy/ober.sock"
    exabgp_unit: str = "/etc/systemd/system/exabgp.service"
    vips_unit: str = "/etc/systemd/system/ober-vips.service"
    vips_script: str = "/etc/ober/vips.sh"
    haproxy_dropin: str = "/etc/systemd/system/haproxy.service.d/ober.conf"
    sysctl_file: str = SYSCTL_FILE
    watchdog_file: str = WATCHDOG_FILE
    tmpfiles_file: str = "/etc/tmpfiles.d/ober-haproxy.conf"
    vip_interface: str = "ober0"

    def venv_of(self, digest: str) -> str:
        """The venv a wheel set (ober_deploy.wheels.WheelSet.digest) is installed into."""
        return f"{self.venvs}/{digest}"


PATHS = NodePaths()
