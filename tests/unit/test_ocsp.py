"""What `ober doctor` and `ober ocsp-update` make of a stored OCSP response (`<bundle>.ocsp`), with real
responses of the lab CA made by `openssl ocsp` (offline: a request file answered from the CA's index)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.tlsca import LabCa
from ober_health import ocsp
from ober_health.doctor import FAIL, PASS, WARN, ocsp_check

GOOD, REVOKED = "s3.lab.example", "revoked.lab.example"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCa:
    authority = LabCa(tmp_path_factory.mktemp("ca"))
    for name in (GOOD, REVOKED):
        authority.server_bundle(name, ["203.0.113.10"], ocsp_url="http://127.0.0.1:8880/")
    authority.revoke(REVOKED)
    return authority


def bundle_with(ca: LabCa, name: str, minutes: int | None) -> Path:
    """The bundle as on a node, with its `.ocsp`: a response valid `minutes`, or empty (None)."""
    bundle = ca.workdir / f"{name}.pem"
    if minutes is None:
        ocsp.companion(bundle).write_bytes(b"")
    else:
        ca.response(name, minutes, ocsp.companion(bundle))
    return bundle


def test_doctor_passes_a_week_long_good_response_and_warns_one_ending_within_12_hours(ca: LabCa) -> None:
    check = ocsp_check(bundle_with(ca, GOOD, 7 * 24 * 60))
    assert check is not None and check.status == PASS and "OCSP response stapled (good, next update" in check.what
    check = ocsp_check(bundle_with(ca, GOOD, 10))
    assert check is not None and check.status == WARN and "the stapled OCSP response ends in 0.2 h" in check.what


def test_doctor_warns_an_ended_or_missing_response_and_fails_a_revoked_certificate(ca: LabCa) -> None:
    bundle = bundle_with(ca, GOOD, 10)
    ended = ocsp_check(bundle, now=time.time() + 3600)
    assert ended is not None and ended.status == WARN and "has ended" in ended.what
    empty = ocsp_check(bundle_with(ca, GOOD, None))
    assert empty is not None and empty.status == WARN and "nothing stapled: no response yet" in empty.what
    revoked = ocsp_check(bundle_with(ca, REVOKED, 7 * 24 * 60))
    assert revoked is not None and revoked.status == FAIL and "REVOKED" in revoked.what
    ocsp.companion(bundle).unlink()
    assert ocsp_check(bundle) is None  # stapling off: no check


def test_a_response_is_fetched_again_past_half_its_validity_or_near_its_end(ca: LabCa) -> None:
    held = ocsp.read_response(ocsp.companion(bundle_with(ca, GOOD, 7 * 24 * 60)))
    assert held.status == "good" and held.this_update is not None and held.next_update is not None
    now = held.this_update
    assert not held.due(now + 3600)
    assert held.due(now + 4 * 86400)  # past half of 7 days
    assert ocsp.read_response(ocsp.companion(bundle_with(ca, GOOD, 60))).due(time.time())  # ends within 6 h
    assert ocsp.read_response(ocsp.companion(bundle_with(ca, GOOD, None))).due(time.time())  # none yet


def test_openssl_errors_in_one_line() -> None:
    said = (
        "Error querying OCSP responder\n"
        "4027ADB2057F0000:error:8000006F:system library:BIO_connect:Connection refused:../crypto/bio/bio_sock2.c:117:"
        "calling connect()\n"
        "4027ADB2057F0000:error:10000067:BIO routines:BIO_connect:connect error:../crypto/bio/bio_sock2.c:119:\n"
    )
    assert ocsp._openssl_says(said) == "Error querying OCSP responder (Connection refused; connect error)"


def test_a_haproxy_that_does_not_answer_is_named(tmp_path: Path) -> None:
    with pytest.raises(ocsp.OcspError, match=r"HAProxy's admin socket .*admin.sock: No such file or directory"):
        ocsp.push(str(tmp_path / "admin.sock"), b"response")
