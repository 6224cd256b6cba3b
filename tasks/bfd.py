"""BFD towards peers with `bfd: true`: FRR's bfdd alone (no zebra, no bgpd), so a dead or frozen node is
dropped by the router in ~150 ms instead of the BGP hold time. ExaBGP has no BFD of its own."""

from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from ober_deploy.plan import current_platform, current_settings
from ober_deploy.render import MANAGED
from ober_health.paths import PATHS

ober = current_settings()
platform = current_platform()
UNIT = PATHS.bfd_unit
CONFIG = PATHS.bfd_config

if ober.bfd:
    config = files.template(
        name="bfdd config",
        src="templates/bfdd.conf.j2",
        dest=CONFIG,
        mode="644",
        managed=MANAGED,
        ober=ober,
    )
    unit = files.template(
        name="ober-bfdd.service",
        src="templates/ober-bfdd.service.j2",
        dest=UNIT,
        mode="644",
        managed=MANAGED,
        bfdd=platform.bfd_daemon,
        config=CONFIG,
    )
    systemd.daemon_reload(name="systemd reads ober-bfdd.service", _if=unit.did_change)
    systemd.service(name="bfdd running", service="ober-bfdd.service", running=True, enabled=True)
    systemd.service(
        name="bfdd restart (config changed)",
        service="ober-bfdd.service",
        restarted=True,
        _if=any_changed(config, unit),
    )
else:
    systemd.service(name="no BFD peers: bfdd stopped", service="ober-bfdd.service", running=False, enabled=False)
    files.file(name="no BFD peers: no bfdd unit", path=UNIT, present=False)
    files.file(name="no BFD peers: no bfdd config", path=CONFIG, present=False)
