"""ExaBGP with ober-health as its API process, under systemd.

`exabgp.service` is Type=notify with a watchdog fed by ober-health, BindsTo HAProxy, and drains on stop.
A change (config, venv, unit) restarts it one node at a time (`_serial`), and the deploy waits until the
restarted node announces its VIPs again before it touches the next one: a re-deploy never takes a VIP
off more than one node at a time.
"""

from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from ober_deploy import staged
from ober_deploy.paths import MANAGED, PATHS
from ober_deploy.plan import add_trigger, current_settings, triggers

ober = current_settings()
DRAIN_TIMEOUT = 30
# one check loop costs at most interval + 2 x timeout (HTTP check, stats socket); allow 4 missed loops
WATCHDOG_SECONDS = max(3, round(4 * (ober.health.interval + 2 * ober.health.timeout)))

config = staged.template(
    name="ExaBGP config",
    src="templates/exabgp.conf.j2",
    dest=PATHS.exabgp_config,
    check=f"{PATHS.venv}/bin/exabgp validate {{staged}}",
    mode="640",
    group=PATHS.user,
    managed=MANAGED,
    ober=ober,
    paths=PATHS,
)
unit = files.template(
    name="exabgp.service",
    src="templates/exabgp.service.j2",
    dest=PATHS.exabgp_unit,
    mode="644",
    managed=MANAGED,
    paths=PATHS,
    drain_timeout=DRAIN_TIMEOUT,
    watchdog_seconds=WATCHDOG_SECONDS,
)
add_trigger("exabgp", config, unit)
systemd.daemon_reload(name="systemd reads exabgp.service", _if=unit.did_change)
server.shell(
    name="exabgp.service enabled (with multi-user.target and HAProxy)",
    commands=["systemctl reenable exabgp.service"],
    _if=unit.did_change,
)

ROLLING_RESTART = f"""
was=$(systemctl is-active exabgp.service || true)
systemctl restart exabgp.service
# a node in maintenance stays withdrawn: nothing to wait for (and the operator wants it that way)
if [ "$was" = active ] && [ ! -e {PATHS.maintenance_file} ]; then
  for i in $(seq 1 120); do
    if {PATHS.venv}/bin/ober status >/dev/null 2>&1; then sleep 2; exit 0; fi
    sleep 0.5
  done
  echo "exabgp.service restarted but not every VIP is announced after 60 s: rolling restart stopped here" >&2
  {PATHS.venv}/bin/ober status >&2
  exit 1
fi
"""
server.shell(
    name="restart ExaBGP (drains first; one node at a time, next only once this one announces again)",
    commands=[ROLLING_RESTART],
    _if=any_changed(*triggers("exabgp")),
    _serial=True,
)
systemd.service(name="ExaBGP running", service="exabgp.service", running=True, enabled=True)
