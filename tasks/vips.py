"""The VIPs on a dummy interface, brought up by a oneshot unit at boot, before HAProxy."""

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from ober_deploy.plan import current_settings
from ober_deploy.render import template_data
from ober_health.paths import PATHS

ober = current_settings()

script = files.template(
    name="VIP script",
    src="templates/ober-vips.sh.j2",
    dest=PATHS.vips_script,
    mode="755",
    **template_data(ober),
)
unit = files.template(
    name="VIP interface unit (ober-vips.service)",
    src="templates/ober-vips.service.j2",
    dest=PATHS.vips_unit,
    mode="644",
    **template_data(ober),
)
systemd.daemon_reload(name="systemd reads the VIP unit", _if=unit.did_change)
systemd.service(name="VIPs up now and at boot", service="ober-vips.service", running=True, enabled=True)
systemd.service(
    name="VIP list changed: re-apply",
    service="ober-vips.service",
    restarted=True,
    _if=any_changed(script, unit),
)
