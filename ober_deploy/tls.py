"""Check TLS bundles on the controller, so HAProxy never gets a certificate it would refuse or serve expired.

HAProxy serves the bundle's certificates as they are: the first is the server's, each next one must be the
issuer of the one before (the chain a client needs, intermediates included; the root is optional). A
bundle with a stranger in the chain (an old intermediate) would be served as it is, and clients without
that intermediate would fail: it is refused here.

A bundle is what HAProxy's `crt` loads: certificate (+ chain) and private key in one PEM file. The key
check uses the stdlib (`ssl.load_cert_chain` fails on a key that does not match); the expiry check uses
the `openssl` command, which every controller that handles certificates has.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

from ober_health.ocsp import PEM_CERTIFICATE as _PEM_CERTIFICATE
from ober_health.ocsp import OcspError, responder_url, split_bundle

EXPIRY_MARGIN_SECONDS = 0  # expired now; a warning window belongs in monitoring, not in a deploy gate


def certificate_problem(path: Path) -> str:
    """Why `path` is not a usable HAProxy bundle ('' when it is)."""
    try:
        if not path.is_file():
            return "no such file on the controller"
        text = path.read_text(errors="replace")
    except OSError as error:  # permission denied, name too long: a line for the operator, not a traceback
        return f"not readable on the controller ({error.strerror or error})"
    if "-----BEGIN CERTIFICATE-----" not in text:
        return "no certificate in the PEM bundle"
    if "PRIVATE KEY-----" not in text:
        return "no private key in the PEM bundle (HAProxy needs certificate and key in one file)"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(path))
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error) or "key values mismatch" in str(error):
            return "the private key does not match the certificate"
        return f"not loadable ({error.reason or error})"
    openssl = shutil.which("openssl")
    if openssl is None:
        return ""
    result = subprocess.run(
        [openssl, "x509", "-noout", "-checkend", str(EXPIRY_MARGIN_SECONDS), "-in", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        end = subprocess.run(
            [openssl, "x509", "-noout", "-enddate", "-in", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        return f"the certificate has expired ({end})"
    return chain_problem(openssl, _PEM_CERTIFICATE.findall(text))


def chain_problem(openssl: str, certificates: list[str]) -> str:
    """Why the certificates after the first are not each the issuer of the one before ('' when they are)."""
    names: list[tuple[str, str]] = []  # (subject, issuer) of each certificate, as openssl prints them
    for pem in certificates:
        out = subprocess.run(
            [openssl, "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253"],
            input=pem,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.splitlines()
        fields = dict(line.split("=", 1) for line in out if "=" in line)
        names.append((fields.get("subject", "?"), fields.get("issuer", "?")))
    for index in range(1, len(names)):
        if names[index][0] != names[index - 1][1]:
            return (
                f"certificate {index + 1} of the bundle ({names[index][0]}) is not the issuer of certificate "
                f"{index} ({names[index - 1][1]}): the chain is out of order or holds a stranger"
            )
    return ""


def public_part(path: Path) -> str:
    """The certificates of a bundle without its key: the copy a node keeps readable by everyone, so that the
    unprivileged ober-health can report the end date (the bundle itself is root's alone, mode 0600)."""
    return "".join(block + "\n" for block in _PEM_CERTIFICATE.findall(path.read_text(errors="replace")))


def ocsp_problem(path: Path) -> str:
    """Why the bundle's response cannot be fetched on a node ('' when it can): the certificate must name its OCSP
    responder (Authority Information Access) and the bundle must carry its issuer (the chain), which the OCSP
    request names and HAProxy needs to match the response to the certificate. The node's own functions
    (ober_health/ocsp.py) decide, so the controller and `ober ocsp-update` cannot disagree."""
    if len(_PEM_CERTIFICATE.findall(path.read_text(errors="replace"))) < 2:
        return "no issuer certificate after the server's (the bundle's chain)"
    try:
        leaf, _issuer = split_bundle(path)
    except OcspError as error:
        return str(error)
    return "" if responder_url(leaf) else "the certificate names no OCSP responder (no Authority Information Access)"
