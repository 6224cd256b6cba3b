"""Where ober's files, sockets and units are on a node: one definition, read by ober-health's defaults,
`ober`, the deploy's templates and tasks, the uninstall and the labs (which move them into a work
directory with `NodePaths.moved_into`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path


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
    maintenance_file: str = "/etc/ober/maintenance"  # present = every VIP withdrawn (survives reboots)
    runtime_dir: str = "/run/ober"
    drain_file: str = "/run/ober/drain"  # written by exabgp.service's stop path, removed by its start
    state_file: str = "/run/ober/state.json"
    haproxy_config: str = "/etc/haproxy/haproxy.cfg"
    certs_dir: str = "/etc/haproxy/certs"
    # the bundles' certificates without keys (0644): ober-health, unprivileged, reads their end dates for its
    # metrics (ober_certificate_expiry_timestamp_seconds); the bundles are root's alone
    public_certs_dir: str = "/etc/ober/certs"
    frontend_acl: str = "/etc/haproxy/ober-frontend.acl"
    admin_socket: str = "/run/haproxy/admin.sock"  # operators (root): level admin
    ober_socket: str = "/run/haproxy/ober.sock"  # ober-health and `ober`: level user, group `user`
    # HAProxy's local frontend: /health for ober-health, stats, Prometheus (loopback only)
    haproxy_monitor: str = "127.0.0.1:8404"
    haproxy_health_uri: str = "/health"
    status_listen: str = "127.0.0.1:8405"  # ober-health's state as JSON (`ober status` falls back to it)
    exabgp_unit: str = "/etc/systemd/system/exabgp.service"
    vips_unit: str = "/etc/systemd/system/ober-vips.service"
    vips_script: str = "/etc/ober/vips.sh"
    vips_applied: str = "/run/ober-vips.applied"  # what the VIP script put on the node, for the next run
    haproxy_dropin: str = "/etc/systemd/system/haproxy.service.d/ober.conf"
    sysctl_file: str = "/etc/sysctl.d/60-ober.conf"  # the kernel tuning the deploy sets (ober_kernel_tuning)
    watchdog_file: str = "/etc/systemd/system.conf.d/60-ober-watchdog.conf"  # RuntimeWatchdogSec, with /dev/watchdog
    tmpfiles_file: str = "/etc/tmpfiles.d/ober-haproxy.conf"
    haproxy_reload: str = "/opt/ober/haproxy-reload.sh"  # tasks/haproxy.py's reload, checked by `sh -n`
    haproxy_master_socket: str = "/run/haproxy-master.sock"  # the distribution's haproxy.service (-S)
    # OCSP stapling (ober_ocsp_stapling): `ober ocsp-update`, hourly; the responses are <bundle>.ocsp in certs_dir
    ocsp_unit: str = "/etc/systemd/system/ober-ocsp.service"
    ocsp_timer: str = "/etc/systemd/system/ober-ocsp.timer"
    bfd_unit: str = "/etc/systemd/system/ober-bfdd.service"
    bfd_config: str = "/etc/frr/ober-bfdd.conf"  # bfdd reads it as user frr: not under /etc/ober (0750 ober)
    vip_interface: str = "ober0"

    def owned(self) -> Footprint:
        """What of these paths is ober's own on a node, as the uninstall removes it: every path field except
        the distribution's (haproxy.cfg, which the uninstall restores; HAProxy's sockets) and the ones that
        are not files (addresses, names), by kind, without what lies under an owned directory. A path added
        to this class is removed by the uninstall unless it is listed as not ober's here."""
        paths = {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if name not in _NOT_OBERS and isinstance(value, str) and value.startswith("/")
        }
        directories = sorted(paths[name] for name in _DIRECTORIES)

        def inside(path: str) -> bool:
            return any(path != d and path.startswith(d.rstrip("/") + "/") for d in directories)

        directories = [d for d in directories if not inside(d)]
        links = sorted(paths[name] for name in _LINKS if not inside(paths[name]))
        files = sorted(
            path for name, path in paths.items() if name not in _DIRECTORIES and name not in _LINKS and not inside(path)
        )
        return Footprint(files=tuple(files), links=tuple(links), directories=tuple(directories))

    @property
    def haproxy_health_url(self) -> str:
        """What ober-health asks HAProxy (health.toml's `haproxy_url`), served by haproxy.cfg's monitor."""
        return f"http://{self.haproxy_monitor}{self.haproxy_health_uri}"

    def venv_of(self, digest: str) -> str:
        """The venv a wheel set (ober_deploy.wheels.WheelSet.digest) is installed into."""
        return f"{self.venvs}/{digest}"

    def moved_into(self, directory: Path, venv: Path, user: str) -> NodePaths:
        """These paths with every file ober writes under `directory` (a lab node, or a test rendering the
        templates for the daemons' own checkers), the programs from `venv` and `user` for the service account."""
        files = {
            "etc": directory,
            "health_config": directory / "health.toml",
            "exabgp_config": directory / "exabgp.conf",
            "exabgp_env": directory / "exabgp.env",
            "maintenance_file": directory / "maintenance",
            "runtime_dir": directory,
            "drain_file": directory / "drain",
            "state_file": directory / "state.json",
            "haproxy_config": directory / "haproxy.cfg",
            "certs_dir": directory / "certs",
            "frontend_acl": directory / "ober-frontend.acl",
            "admin_socket": directory / "admin.sock",
            "ober_socket": directory / "ober.sock",
            "vips_script": directory / "vips.sh",
            "vips_applied": directory / "vips.applied",
            "bfd_config": directory / "bfdd.conf",
        }
        return dataclasses.replace(self, user=user, venv=str(venv), **{k: str(v) for k, v in files.items()})


@dataclass(frozen=True)
class Footprint:
    """ober's own paths on a node by kind (`NodePaths.owned`): what the uninstall removes."""

    files: tuple[str, ...]
    links: tuple[str, ...]
    directories: tuple[str, ...]

    def covers(self, path: str) -> bool:
        """`path` is one of these, or lies under one of the directories."""
        return (
            path in self.files
            or path in self.links
            or any(path == d or path.startswith(d.rstrip("/") + "/") for d in self.directories)
        )


# NodePaths fields that are the distribution's, or not paths of a file: never removed by the uninstall
_NOT_OBERS = frozenset(
    {
        "user",
        "haproxy_config",  # the distribution's: restored from its .ober-orig copy
        "admin_socket",  # HAProxy's sockets: gone with HAProxy's own configuration
        "ober_socket",
        "haproxy_master_socket",
        "haproxy_monitor",
        "haproxy_health_uri",
        "status_listen",
        "vip_interface",
    }
)
_DIRECTORIES = ("prefix", "venvs", "wheels", "etc", "runtime_dir", "certs_dir", "public_certs_dir")
_LINKS = ("venv", "cli_link")

PATHS = NodePaths()
