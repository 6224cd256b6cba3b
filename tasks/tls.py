"""The TLS bundles, on their own: `pyinfra inventories/prod.py tasks/tls.py` (a certificate rotation).

Checked on the controller (key matches, not expired) by the inventory's validation, uploaded 0600 root to
HAProxy's `crt` directory, bundles no longer in the inventory removed; their certificates without the keys
go to a public directory too (ober-health reads the end dates for its metrics). HAProxy is reloaded
(seamless, checked) only if a bundle changed. ExaBGP is not touched: no route moves. deploy.py writes the
same files through tasks/haproxy.py, with one reload for the whole run. With ober_ocsp_stapling the new
bundles' OCSP responses are fetched and stapled right after (tasks/ocsp.py), without another reload.
"""

from pyinfra import local

from ober_deploy import haproxy_inputs
from ober_deploy.plan import current_settings

ober = current_settings()
haproxy_inputs.reload(ober, *haproxy_inputs.tls_bundles(ober))
haproxy_inputs.public_certificates(ober)
local.include("tasks/ocsp.py")  # ober_ocsp_stapling: a new bundle's response fetched now, not at the next timer
