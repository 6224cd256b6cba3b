"""The whitelists, on their own: `pyinfra inventories/prod.py tasks/whitelists.py` (the seed's `ober sync`).

The whole inventory is validated first, as by deploy.py: all three lists (prefixes, or Slurm hostlists
resolved on the controller) and what they constrain. Then the frontend list is written as HAProxy's ACL
file and HAProxy is reloaded (seamless, checked by the reload script the deploy shipped) only if the file
changed. ExaBGP is not touched: no route moves.

What each list enforces, and where:
- `ober_whitelist_frontend`: the clients allowed on the VIPs, enforced by HAProxy on every connection
  (`tcp-request connection reject` outside the ACL file); empty: everyone.
- `ober_whitelist_routers`: every BGP peer of the inventory must be inside, checked on the controller
  before any host is touched; empty: no check.
- `ober_whitelist_backend`: every RGW address the backends resolve to must be inside, checked on the
  controller before any host is touched; empty: no check.

deploy.py writes the same file through tasks/haproxy.py (which declares HAProxy's inputs), with one reload
for the whole run.
"""

from ober_deploy import haproxy_inputs
from ober_deploy.plan import current_settings

ober = current_settings()
haproxy_inputs.reload(ober, *haproxy_inputs.whitelist_acls(ober))
