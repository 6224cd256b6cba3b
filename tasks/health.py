"""ExaBGP and ober-health in a venv under /opt/ober, installed from wheels the controller uploads.

The node needs no package index: the controller builds or downloads the wheels (ober_deploy.wheels), the
deploy uploads them to /opt/ober/wheels (stale ones removed), and pip installs them with `--no-index`.
pip only runs when the set of wheels differs from what the venv was last installed from, so a re-run
changes nothing.
"""

import hashlib
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import Sha1File
from pyinfra.facts.server import Command, LinuxDistribution
from pyinfra.operations import files, server

from ober_deploy.paths import MANAGED, PATHS
from ober_deploy.plan import add_trigger, current_settings
from ober_deploy.platform import platform_from_facts
from ober_deploy.staged import staged_template
from ober_deploy.wheels import ensure_wheels

ober = current_settings()
platform = platform_from_facts(host.get_fact(LinuxDistribution))
wheel_dir = ober.wheels_dir or ensure_wheels(log=False)
wheel_names = sorted(path.name for path in Path(wheel_dir).glob("*.whl"))
requirements = "".join(f"{PATHS.wheels}/{name}\n" for name in wheel_names)
requirements_file = f"{PATHS.prefix}/requirements.txt"
installed_marker = f"{PATHS.venv}/.ober-requirements"

files.directory(name=PATHS.wheels, path=PATHS.wheels, user="root", group="root", mode="755")
for name in wheel_names:
    files.put(name=f"wheel {name}", src=str(Path(wheel_dir) / name), dest=f"{PATHS.wheels}/{name}", mode="644")
files.put(name="the wheel set to install", src=StringIO(requirements), dest=requirements_file, mode="644")

wanted = hashlib.sha1(requirements.encode()).hexdigest()
if host.get_fact(Sha1File, path=installed_marker) != wanted:
    install = server.shell(
        name="install ExaBGP and ober-health into the venv (no index)",
        commands=[
            f"test -x {PATHS.venv}/bin/python || {platform.python} -m venv {PATHS.venv}",
            f"{PATHS.venv}/bin/pip install -q --disable-pip-version-check --no-index --find-links {PATHS.wheels}"
            f" --force-reinstall -r {requirements_file}",
            f"cp {requirements_file} {installed_marker}",
        ],
    )
    add_trigger("exabgp", install)

listing = host.get_fact(Command, f"ls -1 {PATHS.wheels} 2>/dev/null || true") or ""
for stale in sorted(set(listing.split()) - set(wheel_names)):
    files.file(name=f"remove stale wheel {stale}", path=f"{PATHS.wheels}/{stale}", present=False)

health_config = staged_template(
    "ober-health config",
    "templates/health.toml.j2",
    PATHS.health_config,
    check=f"{PATHS.venv}/bin/ober-health --check --config {{staged}}",
    mode="640",
    group=PATHS.user,
    managed=MANAGED,
    ober=ober,
    paths=PATHS,
)
add_trigger("exabgp", health_config)
