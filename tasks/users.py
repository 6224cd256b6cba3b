"""The unprivileged account ExaBGP and ober-health run as, and ober's directories."""

from pyinfra.operations import files, server

from ober_health.paths import PATHS

server.group(name=f"group {PATHS.user}", group=PATHS.user, system=True)
server.user(
    name=f"user {PATHS.user} (runs ExaBGP and ober-health)",
    user=PATHS.user,
    group=PATHS.user,
    system=True,
    shell="/usr/sbin/nologin",
    home="/nonexistent",  # a service account: no home (and nothing for pyinfra to chown)
    create_home=False,
)
files.directory(name=f"{PATHS.etc}", path=PATHS.etc, user="root", group=PATHS.user, mode="750")
files.directory(name=f"{PATHS.prefix}", path=PATHS.prefix, user="root", group="root", mode="755")
