"""The VIPs on a dummy interface, brought up by a oneshot unit at boot, before HAProxy."""

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from ober_deploy.paths import MANAGED, PATHS
from ober_deploy.plan import current_settings

ober = current_settings()

script = files.template(
    name="VIP script",
    src="templates/ober-vips.sh.j2",
    dest=PATHS.vips_script,
    mode="755",
    managed=MANAGED,
    ober=ober,
    paths=PATHS,
)
unit = files.template(
    name="VIP interface unit (ober-vips.service)",
    src="templates/ober-vips.service.j2",
    dest=PATHS.vips_unit,
    mode="644",
    managed=MANAGED,
    ober=ober,
    paths=PATHS,
)
systemd.daemon_reload(name="systemd reads the VIP unit", _if=unit.did_change)
systemd.service(name="VIPs up now and at boot", service="ober-vips.service", running=True, enabled=True)
systemd.service(
    name="VIP list changed: re-apply",
    service="ober-vips.service",
    restarted=True,
    _if=any_changed(script, unit),
)
