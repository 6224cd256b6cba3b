"""TLS bundles for HAProxy's `crt` directory, 0600 root: checked on the controller (key matches, not
expired) before they are uploaded; bundles no longer in the inventory are removed. Their certificates
without the keys go to a public directory too, where the unprivileged ober-health reads the end dates for
its metrics (ober_certificate_expiry_timestamp_seconds)."""

import io

from pyinfra import host
from pyinfra.facts.files import FindFiles
from pyinfra.operations import files

from ober_deploy.plan import add_trigger, current_settings
from ober_deploy.tls import public_part
from ober_health.paths import PATHS

ober = current_settings()

files.directory(name=PATHS.certs_dir, path=PATHS.certs_dir, user="root", group="root", mode="700")
wanted = {f"{PATHS.certs_dir}/{path.name}" for path in ober.tls_certificates}
for path in ober.tls_certificates:
    bundle = files.put(
        name=f"TLS bundle {path.name}",
        src=str(path),
        dest=f"{PATHS.certs_dir}/{path.name}",
        user="root",
        group="root",
        mode="600",
    )
    add_trigger("haproxy", bundle)
for stale in sorted(set(host.get_fact(FindFiles, path=PATHS.certs_dir) or []) - wanted):
    add_trigger("haproxy", files.file(name=f"remove TLS bundle {stale}", path=stale, present=False))

files.directory(name=PATHS.public_certs_dir, path=PATHS.public_certs_dir, user="root", group="root", mode="755")
public = {f"{PATHS.public_certs_dir}/{path.name}" for path in ober.tls_certificates}
for path in ober.tls_certificates:
    files.put(
        name=f"TLS certificate {path.name} (public part, for the metrics)",
        src=io.StringIO(public_part(path)),
        dest=f"{PATHS.public_certs_dir}/{path.name}",
        user="root",
        group="root",
        mode="644",
    )
for stale in sorted(set(host.get_fact(FindFiles, path=PATHS.public_certs_dir) or []) - public):
    files.file(name=f"remove TLS certificate {stale}", path=stale, present=False)
