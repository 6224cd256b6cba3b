"""ober's deploy: `pyinfra inventories/prod.py deploy.py` (a fleet) or `pyinfra @local deploy.py` (one node).

The whole inventory is validated first: a bad value on any host stops the run before any operation is
planned, with one line per problem naming host, key and value. Then one task file per concern, in the
order a node needs them. Re-running is always safe: unchanged inputs change nothing, and a config that
its daemon's own checker rejects never replaces the live one.
"""

from pyinfra import local

from ober_deploy.plan import current_wheels, fleet_settings

fleet_settings()  # validate every host before anything is planned for any of them
current_wheels()  # the wheels the nodes install: built once per run, before any host's plan

for task in (
    "packages",  # HAProxy, Python for the venv, iproute2 (no index refresh unless something is missing)
    "users",  # the unprivileged account of ExaBGP and ober-health, /etc/ober
    "kernel",  # sysctl.d tuning (skipped keys noticed in containers), hardware watchdog
    "vips",  # the VIPs on a dummy interface, before HAProxy starts
    "health",  # wheels uploaded, venv with ExaBGP and ober-health
    "haproxy",  # its inputs (whitelist ACL, TLS bundles 0600), haproxy.cfg (validated, swapped), one reload
    "bfd",  # FRR bfdd for peers with bfd: true
    "exabgp",  # exabgp.conf and health.toml (validated), exabgp.service, rolling restart
    "ocsp",  # ober_ocsp_stapling: ober-ocsp.timer fetches the OCSP responses HAProxy staples (after the venv roll)
):
    local.include(f"tasks/{task}.py")
