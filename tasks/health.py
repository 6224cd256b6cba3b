"""ExaBGP and ober-health in a venv under /opt/ober, installed from wheels the controller uploads.

The node needs no package index: the controller builds or downloads the wheels once per run
(ober_deploy.wheels, ober_deploy.plan.current_wheels), the deploy uploads them to /opt/ober/wheels (stale
ones removed), and pip installs them with `--no-index`. pip only runs when the wheels' content (their
digest, not their names) differs from what the venv was last installed from, so a re-run changes nothing
and any change to the node code is installed.
"""

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.facts.files import Sha1File
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from ober_deploy import staged
from ober_deploy.paths import MANAGED, PATHS
from ober_deploy.plan import add_trigger, current_platform, current_settings, current_wheels

ober = current_settings()
platform = current_platform()
wheelset = current_wheels()
wheel_names = wheelset.names
requirements = wheelset.requirements(prefix=f"{PATHS.wheels}/")
requirements_file = f"{PATHS.prefix}/requirements.txt"
installed_marker = f"{PATHS.venv}/.ober-wheels"

files.directory(name=PATHS.wheels, path=PATHS.wheels, user="root", group="root", mode="755")
for name in wheel_names:
    files.put(name=f"wheel {name}", src=str(wheelset.directory / name), dest=f"{PATHS.wheels}/{name}", mode="644")
files.put(name="the wheel set to install", src=StringIO(requirements), dest=requirements_file, mode="644")

if host.get_fact(Sha1File, path=installed_marker) != hashlib.sha1(f"{wheelset.digest}\n".encode()).hexdigest():
    install = server.shell(
        name="install ExaBGP and ober-health into the venv (no index)",
        commands=[
            f"test -x {PATHS.venv}/bin/python || {platform.python} -m venv {PATHS.venv}",
            f"{PATHS.venv}/bin/pip install -q --disable-pip-version-check --no-index --find-links {PATHS.wheels}"
            f" --force-reinstall -r {requirements_file}",
            f"echo {wheelset.digest} > {installed_marker}",
        ],
    )
    add_trigger("exabgp", install)

listing = host.get_fact(Command, f"ls -1 {PATHS.wheels} 2>/dev/null || true") or ""
for stale in sorted(set(listing.split()) - set(wheel_names)):
    files.file(name=f"remove stale wheel {stale}", path=f"{PATHS.wheels}/{stale}", present=False)

health_config = staged.template(
    name="ober-health config",
    src="templates/health.toml.j2",
    dest=PATHS.health_config,
    check=f"{PATHS.venv}/bin/ober-health --check --config {{staged}}",
    mode="640",
    group=PATHS.user,
    managed=MANAGED,
    ober=ober,
    paths=PATHS,
)
add_trigger("exabgp", health_config)
