"""HAProxy for S3 on Ceph RGW: its inputs (whitelist ACL file, TLS bundles) are written first, the config is
validated with `haproxy -c` on the node against them before it goes live, and a change to any of them is
applied by ONE seamless reload (the master keeps the listeners: no refused connection, no route moves).

HAProxy's inputs are declared here and nowhere else (ober_deploy/haproxy_inputs.py writes them; the same
functions make the standalone `tasks/whitelists.py` and `tasks/tls.py`)."""

import logging

from pyinfra.context import host
from pyinfra.facts.files import File, Socket
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from ober_deploy import haproxy_inputs, staged
from ober_deploy.haproxy import VERSION_COMMAND, haproxy_features, stats_sockets
from ober_deploy.plan import current_platform, current_settings
from ober_deploy.render import MANAGED, template_data
from ober_health.paths import PATHS

ober = current_settings()
platform = current_platform()
threads = max(1, min(64, int((host.get_fact(Command, "nproc") or "1").strip() or 1)))
# HAProxy needs ~2 descriptors per connection and raises its own limit, but only up to the hard limit
# (20000 in some containers): a maxconn above it makes every reload fail with "Loading failure!".
hard_limit = (host.get_fact(Command, "ulimit -Hn") or "unlimited").strip()
maxconn = ober.maxconn
if hard_limit.isdigit() and (int(hard_limit) - 1000) // 2 < maxconn:
    maxconn = max(100, (int(hard_limit) - 1000) // 2)
    logging.getLogger("pyinfra").warning(
        f"{host.name}: ober_maxconn {ober.maxconn} lowered to {maxconn}: the node's descriptor limit is {hard_limit}"
    )

# keywords newer HAProxy versions offer, used only where the node's HAProxy has them (2.6 fallback)
haproxy = haproxy_features(host.get_fact(Command, VERSION_COMMAND))

dropin = files.template(
    name="haproxy.service drop-in (VIPs before HAProxy)",
    src="templates/haproxy-ober.conf.j2",
    dest=PATHS.haproxy_dropin,
    mode="644",
    managed=MANAGED,
)
systemd.daemon_reload(name="systemd reads the HAProxy drop-in", _if=dropin.did_change)

if host.get_fact(File, path=PATHS.haproxy_config + ".ober-orig") is None:
    server.shell(
        name="keep the distribution's haproxy.cfg for the uninstall",
        commands=[
            f"if [ -e {PATHS.haproxy_config} ]; then cp -p {PATHS.haproxy_config} {PATHS.haproxy_config}.ober-orig; fi"
        ],
    )

if platform.needs_haproxy_tmpfiles:
    tmpfiles = files.template(
        name="/run/haproxy for HAProxy's sockets (tmpfiles.d)",
        src="templates/tmpfiles-haproxy.conf.j2",
        dest=PATHS.tmpfiles_file,
        mode="644",
        managed=MANAGED,
    )
    server.shell(
        name="create /run/haproxy now",
        commands=[f"systemd-tmpfiles --create {PATHS.tmpfiles_file}"],
        _if=tmpfiles.did_change,
    )

# what HAProxy reads besides its config: in place before `haproxy -c` checks the config against them
inputs = [*haproxy_inputs.whitelist_acls(ober), *haproxy_inputs.tls_bundles(ober)]
config = staged.template(
    name="HAProxy config",
    src="templates/haproxy.cfg.j2",
    dest=PATHS.haproxy_config,
    check="haproxy -c -f {staged}",
    mode="644",
    **template_data(ober, threads=threads, maxconn=maxconn, haproxy=haproxy),
)
systemd.service(name="HAProxy running and enabled", service="haproxy.service", running=True, enabled=True)
# the reload checks that new workers came (a config `haproxy -c` accepts can still fail to load)
haproxy_inputs.reload(ober, config, *inputs)
haproxy_inputs.public_certificates(ober)  # the bundles' certificates for ober-health's metrics (not HAProxy's)

# The stats sockets' modes and owners as haproxy.cfg says them, whatever the node's history: HAProxy applies
# them only when it creates a socket, a reload keeps the old one (Debian's own config made admin.sock 660 at
# its first start). Decided from the live socket (stat); chmod/chown of a socket drops no connection. A socket
# absent now may be made during this run (the package's first start, with the distribution's config): it is
# checked again on the node, after the reload.
for socket in stats_sockets(PATHS):
    live = host.get_fact(Socket, path=socket.path)
    wanted = f"{socket.mode} {socket.user} {socket.group}"
    if live and f"{live['mode']} {live['user']} {live['group']}" == wanted:
        continue
    seen = f"live: {live['mode']} {live['user']}:{live['group']}" if live else "not there yet"
    server.shell(
        name=f"{socket.path}: mode {socket.mode} {socket.user}:{socket.group} ({seen})",
        commands=[
            f'[ ! -S {socket.path} ] || [ "$(stat -c "%a %U %G" {socket.path})" = "{wanted}" ] || '
            f"{{ chmod {socket.mode} {socket.path} && chown {socket.user}:{socket.group} {socket.path}; }}"
        ],
    )
