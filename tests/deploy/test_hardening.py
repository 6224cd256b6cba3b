"""Hardening the deploy renders (issue 13): the inventory's HSTS option, and the sandbox of every unit ober
installs, scored by systemd's own `systemd-analyze security` on the rendered units (offline: the units as
the deploy writes them, haproxy.service as Debian ships it plus ober's drop-in). The fleet test
(tests/fleet/test_hardening.py) scores the same units live on booted nodes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from lab.tlsca import LabCa
from ober_deploy.render import render, template_data
from ober_deploy.settings import InventoryError, node_settings
from ober_health.paths import PATHS
from tests.conftest import record_outcome
from tests.deploy.conftest import Bundles
from tests.deploy.support import HOST, VENV_BIN, make_chain, resolver, run, site_data

DEBIAN_HAPROXY_UNIT = Path("/lib/systemd/system/haproxy.service")
# "OK" on systemd's scale is below 5.0; what these units reach here (systemd 252) with a margin
LIMITS = {"exabgp.service": 2.5, "ober-vips.service": 2.5, "ober-ocsp.service": 2.5, "haproxy.service": 4.0}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-1, "is out of range (0..63072000)"),
        (63072001, "is out of range (0..63072000)"),
        ("31536000", "is not an integer"),
        (True, "is not an integer"),
    ],
)
def test_hsts_max_age_out_of_range_is_named(bundles: Bundles, value: object, why: str) -> None:
    data = site_data(ober_tls_certificates=[str(bundles.good)], ober_hsts_max_age=value)
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, data, resolver=resolver)
    assert error.value.problems == [f"{HOST}: ober_hsts_max_age: {value!r} {why}"]


def test_hsts_without_tls_is_refused_and_default_is_off(bundles: Bundles) -> None:
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, site_data(ober_hsts_max_age=600), resolver=resolver)
    assert error.value.problems == [
        f"{HOST}: ober_hsts_max_age: 600 is set, but ober_tls_certificates is empty: no TLS response to carry it"
    ]
    tls = site_data(ober_tls_certificates=[str(bundles.good)])
    assert node_settings(HOST, tls, resolver=resolver).hsts_max_age == 0
    assert node_settings(HOST, tls | {"ober_hsts_max_age": 600}, resolver=resolver).hsts_max_age == 600


def test_a_bundle_whose_chain_holds_a_stranger_is_refused(tmp_path: Path) -> None:
    """The certificate, its intermediate and key pass; the same certificate followed by a CA certificate that
    did not issue it (HAProxy would serve it as it is, and clients without the intermediate could not verify)
    is refused, naming both."""
    good = make_chain(tmp_path / "good")
    assert node_settings(HOST, site_data(ober_tls_certificates=[str(good["bundle"])]), resolver=resolver)
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(good["leaf"].read_text() + good["root"].read_text() + good["key"].read_text())
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, site_data(ober_tls_certificates=[str(wrong)]), resolver=resolver)
    assert error.value.problems == [
        f"{HOST}: ober_tls_certificates[0]: {str(wrong)!r} is unusable: certificate 2 of the bundle (CN=lab root)"
        " is not the issuer of certificate 1 (CN=lab intermediate): the chain is out of order or holds a stranger"
    ]


def render_unit(template: str, **data: Any) -> str:
    ober = node_settings(HOST, site_data(), resolver=resolver)
    return render(template, template_data(ober, **data))


def exposure(root: Path, unit: str) -> tuple[float, str]:
    """`systemd-analyze security --offline` of `unit` under `root`: (overall exposure, the report)."""
    result = run(["systemd-analyze", "security", "--offline=yes", f"--root={root}", "--no-pager", unit])
    report = result.stdout + result.stderr
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d)", report)
    assert match, report
    return float(match.group(1)), report


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.skipif(not DEBIAN_HAPROXY_UNIT.exists(), reason="Debian's haproxy.service is not installed here")
def test_every_unit_ober_installs_scores_ok_on_systemd_analyze_security(tmp_path: Path) -> None:
    """Scored as the node would see them: the units in /etc/systemd/system, Debian's haproxy.service in
    /lib/systemd/system with ober's drop-in. ExecStart must exist for systemd to analyze the unit offline:
    the venv is this checkout's (as `systemd-analyze verify` in test_templates)."""
    system = tmp_path / "etc/systemd/system"
    (system / "haproxy.service.d").mkdir(parents=True)
    (tmp_path / "lib/systemd/system").mkdir(parents=True)
    shutil.copy(DEBIAN_HAPROXY_UNIT, tmp_path / "lib/systemd/system/haproxy.service")
    exabgp = render_unit("exabgp.service.j2")
    (system / "exabgp.service").write_text(exabgp.replace(PATHS.venv, str(VENV_BIN.parent)))
    (system / "ober-vips.service").write_text(render_unit("ober-vips.service.j2"))
    ocsp = render_unit("ober-ocsp.service.j2")
    (system / "ober-ocsp.service").write_text(ocsp.replace(PATHS.venv, str(VENV_BIN.parent)))
    (system / "haproxy.service.d/ober.conf").write_text(render_unit("haproxy-ober.conf.j2"))
    for unit, limit in LIMITS.items():
        score, report = exposure(tmp_path, unit)
        record_outcome("systemd-analyze security (offline, systemd here)", f"{unit}: {score}")
        assert score <= limit, f"{unit}: {score} > {limit}\n{report}"
    # the drop-in is what makes haproxy.service score: without it, Debian's unit alone
    (system / "haproxy.service.d/ober.conf").unlink()
    score, _ = exposure(tmp_path, "haproxy.service")
    record_outcome("systemd-analyze security (offline, systemd here)", f"haproxy.service without the drop-in: {score}")
    assert score > LIMITS["haproxy.service"]


# ---- OCSP stapling (ober_ocsp_stapling): off by default, checked on the controller before any node is touched


def test_ocsp_stapling_is_off_by_default_and_must_be_a_boolean(tmp_path: Path) -> None:
    ca = LabCa(tmp_path)
    stapleable = str(ca.server_bundle("s3.lab.example", ["203.0.113.10"], ocsp_url="http://ocsp.lab.example/"))
    tls = site_data(ober_tls_certificates=[stapleable])
    assert node_settings(HOST, tls, resolver=resolver).ocsp_stapling is False
    assert node_settings(HOST, tls | {"ober_ocsp_stapling": True}, resolver=resolver).ocsp_stapling is True
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, tls | {"ober_ocsp_stapling": "yes"}, resolver=resolver)
    assert error.value.problems == [f"{HOST}: ober_ocsp_stapling: 'yes' is not true or false"]


def test_ocsp_stapling_names_the_bundle_it_cannot_staple(bundles: Bundles, tmp_path: Path) -> None:
    """A certificate without an OCSP responder URL (AIA), a bundle without its issuer (the OCSP request names
    it, HAProxy needs it to match the response), no TLS at all: each refused with key, value and why."""
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, site_data(ober_ocsp_stapling=True), resolver=resolver)
    assert error.value.problems == [
        f"{HOST}: ober_ocsp_stapling: True is set, but ober_tls_certificates is empty: no certificate to staple for"
    ]
    chain = make_chain(tmp_path / "chain")  # issuer in the bundle, but no responder named
    data = site_data(ober_tls_certificates=[str(chain["bundle"]), str(bundles.good)], ober_ocsp_stapling=True)
    with pytest.raises(InventoryError) as error:
        node_settings(HOST, data, resolver=resolver)
    assert error.value.problems == [
        f"{HOST}: ober_tls_certificates[0]: {str(chain['bundle'])!r} cannot be stapled (ober_ocsp_stapling): the"
        " certificate names no OCSP responder (no Authority Information Access)",
        f"{HOST}: ober_tls_certificates[1]: {str(bundles.good)!r} cannot be stapled (ober_ocsp_stapling): no issuer"
        " certificate after the server's (the bundle's chain)",
    ]


def test_ocsp_units_only_with_the_option_and_removed_by_the_uninstall() -> None:
    """ober-ocsp.service runs `ober ocsp-update` from the venv; its timer and it are ober's own paths, so the
    uninstall removes them (and its script stops the timer first)."""
    unit = render_unit("ober-ocsp.service.j2")
    assert f"ExecStart={PATHS.venv}/bin/ober ocsp-update" in unit
    assert f"ReadWritePaths={PATHS.certs_dir}" in unit
    owned = PATHS.owned()
    assert owned.covers(PATHS.ocsp_unit) and owned.covers(PATHS.ocsp_timer)
    assert "ober-ocsp.timer ober-ocsp.service" in render_unit("ober-uninstall.sh.j2")
