"""Remove everything ober put on a node: `pyinfra inventories/prod.py tasks/uninstall.py`.

The routes go first (ExaBGP is stopped with its drain), then the VIPs, then ober's files, derived from the
node's path model (`NodePaths.owned()` in ober_health/paths.py: every path of ober's, by kind), then the
account. HAProxy stays installed (it is the distribution's package) with the configuration it had before ober; so does
the `ober-haproxy` package source an `ober_haproxy_repository` added: the HAProxy left installed came from it, and
removing its source would stop that HAProxy's security updates. The shell steps are templates/ober-uninstall.sh.j2,
uploaded outside ober's directories.
"""

from pyinfra.operations import files, server, systemd

from ober_deploy.render import MANAGED
from ober_deploy.staged import staged_path
from ober_health.paths import PATHS

SCRIPT = "/run/ober-uninstall.sh"  # outside what is removed; it removes itself at the end

owned = PATHS.owned()
files.template(
    name="the uninstall's shell steps",
    src="templates/ober-uninstall.sh.j2",
    dest=SCRIPT,
    mode="700",
    managed=MANAGED,
    paths=PATHS,
)
server.shell(
    name="stop and disable ober's services (ExaBGP drains first), remove the VIPs", commands=[f"sh {SCRIPT} stop"]
)
for path in (*owned.files, staged_path(PATHS.haproxy_config)):
    files.file(name=f"remove {path}", path=path, present=False)
for path in owned.links:
    files.link(name=f"remove {path}", path=path, present=False)
for directory in owned.directories:
    files.directory(name=f"remove {directory}", path=directory, present=False)
server.shell(name="restore the distribution's haproxy.cfg and restart HAProxy", commands=[f"sh {SCRIPT} restore"])
server.user(name=f"remove user {PATHS.user}", user=PATHS.user, present=False)
server.group(name=f"remove group {PATHS.user}", group=PATHS.user, present=False)
systemd.daemon_reload(name="systemd forgets ober's units")
