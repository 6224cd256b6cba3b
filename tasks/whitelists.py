"""Whitelists as HAProxy ACL files: who may use the VIPs (`ober_whitelist_frontend`).

`ober_whitelist_routers` and `ober_whitelist_backend` are enforced on the controller (every BGP peer and
every RGW address must be inside them); the frontend list is enforced by HAProxy on every connection.
An empty list means no restriction and renders no rule. A change reloads HAProxy (seamless), no restart.
"""

from pyinfra.operations import files

from ober_deploy.plan import add_trigger, current_settings
from ober_deploy.render import MANAGED
from ober_health.paths import PATHS

ober = current_settings()

frontend_acl = files.template(
    name="frontend whitelist (ACL file)",
    src="templates/whitelist.acl.j2",
    dest=PATHS.frontend_acl,
    mode="644",
    managed=MANAGED,
    description="ober_whitelist_frontend: clients allowed on the VIPs (empty: everyone)",
    networks=list(ober.whitelist_frontend),
)
add_trigger("haproxy", frontend_acl)
