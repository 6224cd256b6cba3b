"""OCSP stapling (`ober_ocsp_stapling`): ober-ocsp.timer runs `ober ocsp-update` hourly, and once now.

The responses' files beside the bundles are HAProxy's inputs (tasks/haproxy.py writes them through
ober_deploy/haproxy_inputs.py); this file installs what fills them, after ExaBGP's task so that the venv the
units name holds this run's `ober`. The first fetch runs here through the unit itself (its sandbox, as the
timer runs it); a responder that does not answer does not fail the deploy: HAProxy then staples nothing for
that certificate, as without the option, and `ober doctor` and the unit's journal say why. Without the option
the units are stopped and removed.
"""

import hashlib

from pyinfra.context import host
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from ober_deploy.plan import current_settings
from ober_deploy.render import template_data
from ober_health.ocsp import companion
from ober_health.paths import PATHS

ober = current_settings()


def responses_wanting_a_fetch() -> bool:
    """True when this run uploads a bundle (new or changed: tasks/haproxy.py empties its response file) or a
    response file is missing or empty on the node: then the first fetch runs now, not at the next timer.
    Otherwise the hourly timer keeps the responses fresh, and a re-run changes nothing (`server.shell` always
    counts as a change)."""
    for bundle in ober.tls_certificates:
        live = f"{PATHS.certs_dir}/{bundle.name}"
        if host.get_fact(Sha1File, path=live) != hashlib.sha1(bundle.read_bytes()).hexdigest():
            return True
        response = host.get_fact(File, path=str(companion(live)))
        if not response or not response.get("size"):
            return True
    return False


if ober.ocsp_stapling:
    service = files.template(
        name="ober-ocsp.service (fetch the OCSP responses, hand them to HAProxy)",
        src="templates/ober-ocsp.service.j2",
        dest=PATHS.ocsp_unit,
        mode="644",
        **template_data(ober),
    )
    timer = files.template(
        name="ober-ocsp.timer (hourly)",
        src="templates/ober-ocsp.timer.j2",
        dest=PATHS.ocsp_timer,
        mode="644",
        **template_data(ober),
    )
    systemd.daemon_reload(name="systemd reads ober-ocsp's units", _if=any_changed(service, timer))
    systemd.service(name="ober-ocsp.timer running and enabled", service="ober-ocsp.timer", running=True, enabled=True)
    units_changed = any_changed(service, timer)
    wanted = responses_wanting_a_fetch()
    server.shell(
        name="OCSP responses fetched and stapled now (ober-ocsp.service; a failure leaves them to the timer)",
        commands=[
            "systemctl start ober-ocsp.service || echo 'ober-ocsp: a response was not fetched:"
            " journalctl -u ober-ocsp; the timer retries hourly' >&2"
        ],
        _if=lambda: wanted or units_changed(),
    )
elif host.get_fact(File, path=PATHS.ocsp_timer) is not None or host.get_fact(File, path=PATHS.ocsp_unit):
    server.shell(
        name="ober-ocsp.timer stopped and disabled (ober_ocsp_stapling off)",
        commands=["systemctl disable --now ober-ocsp.timer 2>/dev/null || true"],
    )
    for path in (PATHS.ocsp_timer, PATHS.ocsp_unit):
        files.file(name=f"remove {path}", path=path, present=False)
    systemd.daemon_reload(name="systemd forgets ober-ocsp's units")
