"""OS packages: HAProxy from the distribution (or `ober_haproxy_repository`), Python for the venv, iproute.

The package index is only refreshed when something is missing: nodes of an air-gapped site (and the
lab's) have their packages from an image or a local mirror, and a re-run must not need the network.
"""

from io import StringIO

from pyinfra.context import host
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt, dnf, files

from ober_deploy.plan import current_platform, current_settings

ober = current_settings()
platform = current_platform()
# ober_ocsp_stapling: `ober ocsp-update` runs the `openssl` command (on Debian already there: ca-certificates needs it)
wanted = list(platform.packages) + (["frr"] if ober.bfd else []) + (["openssl"] if ober.ocsp_stapling else [])

if platform.package_manager == "apt":
    if ober.haproxy_repository:
        apt.repo(
            name="HAProxy repository (ober_haproxy_repository)",
            src=ober.haproxy_repository,
            filename="ober-haproxy",
        )
    installed = host.get_fact(DebPackages) or {}
    missing = [name for name in wanted if name not in installed]
    apt.packages(
        name="OS packages for HAProxy, ExaBGP's venv and the VIPs",
        packages=wanted,
        update=bool(missing),  # refresh the index only when something must be installed
        no_recommends=True,
    )
else:
    if ober.haproxy_repository:
        files.put(
            name="HAProxy repository (ober_haproxy_repository)",
            src=StringIO(
                f"[ober-haproxy]\nname=HAProxy for ober\nbaseurl={ober.haproxy_repository}\nenabled=1\ngpgcheck=1\n"
            ),
            dest="/etc/yum.repos.d/ober-haproxy.repo",
        )
    dnf.packages(name="OS packages for HAProxy, ExaBGP's venv and the VIPs", packages=wanted)
