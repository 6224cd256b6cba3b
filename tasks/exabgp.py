"""ExaBGP with ober-health as its API process, under systemd, restarted one node at a time.

`exabgp.service` is Type=notify with a watchdog fed by ober-health, PartOf HAProxy, and drains on stop.
ExaBGP's inputs are declared here: exabgp.conf, health.toml (its API process's config), its environment
file, its unit, and the venv (tasks/health.py installs it; whether this run installs one, or the link
points elsewhere, is read from the node). A change to any of them restarts it one node at a time: on each
node the validated configs and the new venv go live, ExaBGP restarts (draining first), and the deploy
waits until `ober status` reports the node serving again - every VIP announced over an established BGP
session - before it touches the next node. A node that does not come back within the bound stops the
roll there: the deploy fails naming the node and printing its `ober status` (peer, reason), and the
nodes after it keep their config, their code and their routes. A node in maintenance is restarted but
not waited for (it stays withdrawn by design).
"""

from pyinfra.context import host
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from ober_deploy import rolling, staged
from ober_deploy.facts import VERSION_COMMAND, OberInstall
from ober_deploy.plan import current_settings, current_wheels
from ober_deploy.render import template_data
from ober_health.paths import PATHS

ober = current_settings()
wheelset = current_wheels()
venv = PATHS.venv_of(wheelset.digest)
# from the restart to the node serving again: ExaBGP up, the sessions established, `rise` good checks
SERVING_TIMEOUT = 30 + round(ober.health.rise * ober.health.interval)

config = staged.template(
    name="ExaBGP config",
    src="templates/exabgp.conf.j2",
    dest=PATHS.exabgp_config,
    check=f"{venv}/bin/exabgp validate {{staged}}",
    mode="640",
    group=PATHS.user,
    swap=False,  # goes live in the rolling restart below
    **template_data(ober),
)
health_config = staged.template(
    name="ober-health config",
    src="templates/health.toml.j2",
    dest=PATHS.health_config,
    check=f"{venv}/bin/ober-health --check --config {{staged}}",
    mode="640",
    group=PATHS.user,
    swap=False,  # goes live in the rolling restart below
    **template_data(ober),
)
env_file = files.template(
    name="ExaBGP environment file",
    src="templates/exabgp.env.j2",
    dest=PATHS.exabgp_env,
    mode="644",
    **template_data(ober),
)
unit = files.template(
    name="exabgp.service",
    src="templates/exabgp.service.j2",
    dest=PATHS.exabgp_unit,
    mode="644",
    **template_data(ober),
)
systemd.daemon_reload(name="systemd reads exabgp.service", _if=unit.did_change)
server.shell(
    name="exabgp.service enabled (with multi-user.target and HAProxy)",
    commands=["systemctl reenable exabgp.service"],
    _if=unit.did_change,
)

changed = any_changed(config, health_config, env_file, unit)
installed = host.get_fact(OberInstall, venv=PATHS.venv, venvs=PATHS.venvs)  # as tasks/health.py read it
# a venv installed in this run, or one an earlier run installed that the roll never reached here
venv_pending = wheelset.digest not in installed["venvs"] or installed["link"] != venv
rolling.restart(
    name="restart ExaBGP (drains first; one node at a time, the next only once this one serves again)",
    service="exabgp.service",
    swap=[PATHS.exabgp_config, PATHS.health_config],
    link=(PATHS.venv, venv),
    wait=f"{PATHS.venv}/bin/ober status",
    timeout=SERVING_TIMEOUT,
    skip_wait_if=PATHS.maintenance_file,
    version=VERSION_COMMAND.format(venv=PATHS.venv),
    _serial=True,
    _if=lambda: venv_pending or changed(),
)
systemd.service(name="ExaBGP running", service="exabgp.service", running=True, enabled=True)
