"""ExaBGP and ober-health in a venv per wheel set, installed from wheels the controller uploads.

The node needs no package index: the controller builds the wheels once per run (ober_deploy.wheels), the
deploy uploads them to /opt/ober/wheels (stale ones removed) and pip installs them with `--no-index` into
/opt/ober/venvs/<digest>, the digest being a hash of the wheels' bytes: any change to the node code is a
new venv, installed beside the running one. /opt/ober/venv, the path the units and configs name, is a
symlink that the rolling restart (tasks/exabgp.py) points at the new venv one node at a time, right
before it restarts ExaBGP there; a node the roll does not reach keeps running what it had. The same
wheel set again changes nothing.

health.toml, read by ober-health (ExaBGP's API process), is one of ExaBGP's inputs: tasks/exabgp.py writes
it, checked by the new venv's `ober-health --check`. A new venv restarts ExaBGP there too: it decides that
from the node (the venv link does not point at this wheel set's venv), not from an operation of this file.
"""

import posixpath
from io import StringIO

from pyinfra.context import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from ober_deploy.facts import INSTALLED_MARKER, OberInstall
from ober_deploy.plan import current_platform, current_wheels
from ober_health.paths import PATHS

platform = current_platform()
wheelset = current_wheels()
venv = PATHS.venv_of(wheelset.digest)
requirements_file = f"{PATHS.prefix}/requirements.txt"
installed = host.get_fact(OberInstall, venv=PATHS.venv, venvs=PATHS.venvs)
if installed["link"] == venv:
    host.log(f"ober_health {installed['version']} installed, unchanged")
else:
    host.log(f"ober_health {installed['version'] or '(none)'} installed, {wheelset.version} to install")

files.directory(name=PATHS.wheels, path=PATHS.wheels, user="root", group="root", mode="755")
for name in wheelset.names:
    files.put(name=f"wheel {name}", src=str(wheelset.directory / name), dest=f"{PATHS.wheels}/{name}", mode="644")
files.put(
    name="the wheel set to install",
    src=StringIO(wheelset.requirements(prefix=f"{PATHS.wheels}/")),
    dest=requirements_file,
    mode="644",
)
listing = host.get_fact(Command, f"ls -1 {PATHS.wheels} 2>/dev/null || true") or ""
for stale in sorted(set(listing.split()) - set(wheelset.names)):
    files.file(name=f"remove stale wheel {stale}", path=f"{PATHS.wheels}/{stale}", present=False)

if wheelset.digest not in installed["venvs"]:
    server.shell(
        name=f"install ober_health {wheelset.version} with ExaBGP into {venv} (no index)",
        commands=[
            f"rm -rf {venv}",  # what an interrupted install left
            f"{platform.python} -m venv {venv}",
            f"{venv}/bin/pip install -q --disable-pip-version-check --no-index --find-links {PATHS.wheels}"
            f" -r {requirements_file}",
            f"echo {wheelset.version} > {venv}/{INSTALLED_MARKER}",
            # a first install: nothing runs from the venv path yet, and ExaBGP's config check needs the
            # programs it names to exist; an existing link is switched by the rolling restart
            f"test -e {PATHS.venv} || test -L {PATHS.venv} || ln -s {venv} {PATHS.venv}",
        ],
    )
# venvs of an earlier deploy whose roll never reached this node
keep = {wheelset.digest, posixpath.basename(installed["link"] or "")}
for unused in sorted(set(installed["venvs"]) - keep):
    files.directory(name=f"remove unused venv {unused}", path=PATHS.venv_of(unused), present=False)

# `ober` on the operator's PATH, through the venv link: it follows every upgrade without being touched
files.link(name=f"ober on PATH ({PATHS.cli_link})", path=PATHS.cli_link, target=f"{PATHS.venv}/bin/ober")
