"""What HAProxy reads besides haproxy.cfg (the whitelist ACL file, the TLS bundles) and its one reload.

HAProxy's inputs are declared where HAProxy is deployed: tasks/haproxy.py writes them (through the
functions here) before it validates haproxy.cfg against them, then reloads HAProxy once if any of them or
the config changed. The same functions make the standalone runs: `pyinfra INVENTORY tasks/whitelists.py`
(the seed's `ober sync`) and `pyinfra INVENTORY tasks/tls.py` (a certificate rotation) write their files
and reload only if they changed. No operation is remembered across task files, so nothing depends on
the order in which deploy.py includes them: each run reloads HAProxy at most once, after every input and
the config are in place.

A reload is seamless (the master hands its listeners to the new workers) and never touches ExaBGP: no
route moves. It runs the script the deploy ships (templates/haproxy-reload.sh.j2), which fails when the
new workers did not come (a config `haproxy -c` accepts can still fail to load).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from pyinfra.api.operation import OperationMeta
from pyinfra.context import host
from pyinfra.facts.files import FindFiles
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from ober_deploy.render import template_data
from ober_deploy.settings import NodeSettings
from ober_deploy.tls import public_part
from ober_health.ocsp import companion
from ober_health.paths import PATHS


def whitelist_acls(ober: NodeSettings) -> list[OperationMeta]:
    """The frontend whitelist as HAProxy's ACL file (haproxy.cfg always rejects a source outside it; an
    empty list is written as every address, so the config is the same with and without a whitelist)."""
    return [
        files.template(
            name="frontend whitelist (ACL file)",
            src="templates/whitelist.acl.j2",
            dest=PATHS.frontend_acl,
            mode="644",
            **template_data(ober),
        )
    ]


def tls_bundles(ober: NodeSettings) -> list[OperationMeta]:
    """The inventory's TLS bundles in HAProxy's `crt` directory (0600 root), bundles no longer listed removed.

    The bundles were checked on the controller (key matches, not expired) by the inventory's validation.

    With ober_ocsp_stapling each bundle has its `<bundle>.ocsp` beside it: written empty when missing (HAProxy
    then staples for that certificate, and takes responses at runtime: ober_health/ocsp.py) and emptied when
    the bundle changes (the response held is the old certificate's); `ober ocsp-update` fills it. Without the
    option those files are removed like stale bundles, and the reload that follows stops the stapling."""
    responses = [str(companion(f"{PATHS.certs_dir}/{path.name}")) for path in ober.tls_certificates]
    responses = responses if ober.ocsp_stapling else []
    operations = _one_file_per_bundle(
        ober, PATHS.certs_dir, "700", "600", "TLS bundle {name}", "remove TLS bundle {stale}", str, keep=responses
    )
    puts = operations[1 : 1 + len(ober.tls_certificates)]  # after the directory, one upload per bundle, in order
    for put, response in zip(puts, responses, strict=False):
        operations.append(
            server.shell(
                name=f"{response}: emptied, its bundle changed (ober ocsp-update fetches the new certificate's)",
                commands=[f": > {response}"],
                _if=put.did_change,
            )
        )
        operations.append(
            files.file(
                name=f"{response} (OCSP stapling on: HAProxy staples what ober ocsp-update puts here)",
                path=response,
                user="root",
                group="root",
                mode="600",
            )
        )
    return operations


def public_certificates(ober: NodeSettings) -> list[OperationMeta]:
    """Each bundle's certificates without the key, 0644 in a public directory, where the unprivileged
    ober-health reads the end dates for its metrics (ober_certificate_expiry_timestamp_seconds). Not an input
    of HAProxy: no reload of their own."""
    return _one_file_per_bundle(
        ober,
        PATHS.public_certs_dir,
        "755",
        "644",
        "TLS certificate {name} (public part, for the metrics)",
        "remove TLS certificate {stale}",
        lambda path: io.StringIO(public_part(path)),
    )


def _one_file_per_bundle(
    ober: NodeSettings,
    directory: str,
    directory_mode: str,
    mode: str,
    name: str,
    remove: str,
    content: Callable[[Path], str | io.StringIO],
    keep: list[str] | None = None,
) -> list[OperationMeta]:
    """`directory` (root's) holding one file per inventory bundle, named as the bundle, with `content` of it;
    files of bundles no longer listed removed (what is there is read from the node, not remembered), but
    those in `keep`."""
    operations = [files.directory(name=directory, path=directory, user="root", group="root", mode=directory_mode)]
    wanted = {f"{directory}/{path.name}" for path in ober.tls_certificates} | set(keep or [])
    for path in ober.tls_certificates:
        operations.append(
            files.put(
                name=name.format(name=path.name),
                src=content(path),
                dest=f"{directory}/{path.name}",
                user="root",
                group="root",
                mode=mode,
            )
        )
    for stale in sorted(set(host.get_fact(FindFiles, path=directory) or []) - wanted):
        operations.append(files.file(name=remove.format(stale=stale), path=stale, present=False))
    return operations


def reload(ober: NodeSettings, *inputs: OperationMeta) -> OperationMeta:
    """Ship the reload script and run it once if any of `inputs` changed: a seamless reload, checked."""
    files.template(
        name="HAProxy reload script",
        src="templates/haproxy-reload.sh.j2",
        dest=PATHS.haproxy_reload,
        mode="755",
        **template_data(ober),
    )
    changed: Callable[[], bool] = any_changed(*inputs)
    return server.shell(
        name="HAProxy reload (seamless: the master hands its listeners to the new workers)",
        commands=[f"sh {PATHS.haproxy_reload}"],
        _if=changed,
    )
