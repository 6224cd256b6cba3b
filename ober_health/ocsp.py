"""OCSP stapling (`ober_ocsp_stapling`): each TLS bundle's OCSP response fetched from the responder its
certificate names (AIA), handed to the running HAProxy over its admin socket and kept next to the bundle.

HAProxy 2.6 (Debian 12) never fetches a response itself: it staples `<bundle>.ocsp` (DER) read at load time
and takes new ones at runtime with `set ssl ocsp-response <base64>` (management.txt). An empty `<bundle>.ocsp`
is enough for it to turn stapling on for that certificate (with a warning: "Unable to parse OCSP response"),
so the deploy writes one empty and `ober ocsp-update` fills it: no reload, ever. HAProxy 3.0 (Debian 13) does
the same with these files and commands (and has `ocsp-update on` of its own, not used: one mechanism for both).

A fetch that fails keeps the last good response (HAProxy goes on stapling it until its nextUpdate) and is
reported on stderr (the unit's journal) with exit 1, and by `ober doctor`. A revoked certificate's response
is stapled as it is: the truth for clients that check.

`openssl` (the command) does the OCSP work: nodes get no Python package for it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ober_health.certs import bundles_in, crt_paths
from ober_health.checks import haproxy_command

OCSP_SUFFIX = ".ocsp"
ISSUER_SUFFIX = ".issuer"
FETCH_TIMEOUT = 20  # seconds for one responder's answer
# a response is fetched again once half of its validity has passed (Let's Encrypt's advice), or when this
# close to its nextUpdate, so a responder outage of hours does not leave a stale staple
REFRESH_MARGIN_SECONDS = 6 * 3600
NEAR_EXPIRY_SECONDS = 12 * 3600  # `ober doctor` warns when the stapled response ends sooner
PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_TIME_FORMAT = "%b %d %H:%M:%S %Y %Z"


def companion(bundle: Path | str) -> Path:
    """`<bundle>.ocsp`: the response HAProxy staples after a (re)start."""
    return Path(str(bundle) + OCSP_SUFFIX)


@dataclass(frozen=True)
class Response:
    """An OCSP response for one certificate, as `openssl ocsp` reads it."""

    status: str  # good, revoked, unknown ("" when unreadable)
    this_update: float | None
    next_update: float | None
    problem: str = ""  # why it is not usable ("" when it is)

    def due(self, now: float) -> bool:
        """Time to fetch a new one: half its validity passed, or its end near."""
        if self.problem or self.next_update is None:
            return True
        if self.next_update - now < REFRESH_MARGIN_SECONDS:
            return True
        start = self.this_update if self.this_update is not None else now
        return now >= start + (self.next_update - start) / 2


def _epoch(text: str) -> float:
    return datetime.strptime(re.sub(r"\s+", " ", text.strip()), _TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def parse_status(text: str) -> Response:
    """The status lines `openssl ocsp` prints for one certificate (`<name>: good`, This/Next Update)."""
    status = ""
    this_update = next_update = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("This Update:"):
            this_update = _epoch(stripped.split(":", 1)[1])
        elif stripped.startswith("Next Update:"):
            next_update = _epoch(stripped.split(":", 1)[1])
        elif stripped.startswith("Cert Status:"):
            status = stripped.split(":", 1)[1].strip()
        elif re.search(r": (good|revoked|unknown)$", stripped) and not line.startswith((" ", "\t")):
            status = stripped.rsplit(": ", 1)[1]
    if not status:
        return Response("", this_update, next_update, "no certificate status in the response")
    return Response(status, this_update, next_update)


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise OcspError("the openssl command is not installed (package openssl)")
    return found


class OcspError(RuntimeError):
    """Why a bundle's response could not be fetched or handed to HAProxy (one line)."""


def read_response(path: Path) -> Response:
    """The response stored in `path` (`<bundle>.ocsp`); its problem says when there is none."""
    try:
        if path.stat().st_size == 0:
            return Response("", None, None, "no response yet (empty file)")
    except FileNotFoundError:
        return Response("", None, None, "no response file")
    result = subprocess.run(
        [_openssl(), "ocsp", "-respin", str(path), "-resp_text", "-noverify"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        return Response("", None, None, "not a readable OCSP response")
    return parse_status(result.stdout)


def split_bundle(bundle: Path) -> tuple[str, str]:
    """(the server's certificate, its issuer) as PEM: the issuer is the bundle's second certificate, else
    `<bundle>.issuer` (as HAProxy finds it)."""
    certificates = PEM_CERTIFICATE.findall(bundle.read_text(errors="replace"))
    if not certificates:
        raise OcspError("no certificate in the bundle")
    if len(certificates) > 1:
        return certificates[0] + "\n", certificates[1] + "\n"
    issuer = Path(str(bundle) + ISSUER_SUFFIX)
    if issuer.exists():
        found = PEM_CERTIFICATE.findall(issuer.read_text(errors="replace"))
        if found:
            return certificates[0] + "\n", found[0] + "\n"
    raise OcspError(f"no issuer certificate (neither in the chain nor in {issuer.name})")


def responder_url(certificate_pem: str) -> str:
    """The OCSP responder the certificate names (Authority Information Access), or '' when none."""
    result = subprocess.run(
        [_openssl(), "x509", "-noout", "-ocsp_uri"],
        input=certificate_pem,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 and result.stdout.strip() else ""


def fetch(bundle: Path, timeout: float = FETCH_TIMEOUT) -> tuple[bytes, Response]:
    """Ask the bundle's responder for its certificate's status: (the DER response, what it says). The response
    is verified against the issuer (signed by it or by a responder it delegated to) and in its time window."""
    leaf, issuer = split_bundle(bundle)
    url = responder_url(leaf)
    if not url:
        raise OcspError("the certificate names no OCSP responder (no Authority Information Access OCSP URL)")
    with tempfile.TemporaryDirectory(prefix="ober-ocsp-") as scratch:
        leaf_file, issuer_file, out = (Path(scratch) / name for name in ("cert.pem", "issuer.pem", "response.der"))
        leaf_file.write_text(leaf)
        issuer_file.write_text(issuer)
        argv = [_openssl(), "ocsp", "-issuer", str(issuer_file), "-cert", str(leaf_file), "-url", url]
        argv += ["-verify_other", str(issuer_file), "-CAfile", str(issuer_file), "-partial_chain"]
        argv += ["-timeout", str(int(timeout)), "-respout", str(out)]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 5, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OcspError(f"{url} did not answer within {timeout:.0f} s") from exc
        said = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or "Response verify OK" not in said or not out.exists():
            raise OcspError(f"{url}: {_openssl_says(said)}")
        response = parse_status(result.stdout)
        if response.problem:
            raise OcspError(f"{url}: {response.problem}")
        if response.status not in ("good", "revoked"):
            raise OcspError(f"{url}: the responder does not know the certificate (status {response.status})")
        return out.read_bytes(), response


def _openssl_says(text: str) -> str:
    """openssl's first line and the reasons of its error stack, in one line:
    `Error querying OCSP responder (Connection refused)`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reasons: list[str] = []
    for line in lines:
        fields = line.split(":")
        if len(fields) > 5 and fields[1] == "error" and fields[5] not in reasons:
            reasons.append(fields[5])
    first = next((line for line in lines if ":error:" not in line), "no answer")
    return f"{first} ({'; '.join(reasons)})" if reasons else first


def store(bundle: Path, der: bytes) -> None:
    """`<bundle>.ocsp` replaced whole (a restart of HAProxy staples it at once), root's alone as the bundle."""
    target = companion(bundle)
    temporary = target.with_name(f".{target.name}.tmp")  # a dot: HAProxy's crt directory loading skips it
    temporary.write_bytes(der)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)


def push(admin_socket: str, der: bytes, timeout: float = 5.0) -> None:
    """The response to the running HAProxy (every worker; no reload): `set ssl ocsp-response`."""
    try:
        answer = haproxy_command(admin_socket, f"set ssl ocsp-response {base64.b64encode(der).decode()}", timeout)
    except OSError as exc:
        raise OcspError(f"HAProxy's admin socket {admin_socket}: {exc.strerror or exc}") from exc
    if "OCSP Response updated" not in answer:
        raise OcspError(f"HAProxy refused the response: {answer.strip() or 'no answer'}")


def describe(response: Response) -> str:
    if response.next_update is None:
        return response.status
    end = datetime.fromtimestamp(response.next_update, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{response.status}, next update {end}"


def update(
    haproxy_config: Path,
    admin_socket: str,
    force: bool = False,
    now: float | None = None,
    timeout: float = FETCH_TIMEOUT,
) -> int:
    """Fetch and staple each bundle of haproxy.cfg's `crt` lines that has a `<bundle>.ocsp` (stapling on) and
    whose response is due (all with `force`). Exit 0 when every one is current, 1 when one failed. `timeout`
    bounds each responder's answer (OpenSSL 3 retries a refused connection until then)."""
    try:
        text = haproxy_config.read_text()
    except OSError as exc:
        print(f"ober ocsp-update: {haproxy_config}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    failed = 0
    for crt in crt_paths(text):
        for bundle in bundles_in(crt):
            if not companion(bundle).exists():
                continue  # stapling off for this bundle (the deploy writes the file when it is on)
            held = read_response(companion(bundle))
            if not force and not held.due(time.time() if now is None else now):
                print(f"{bundle.name}: kept ({describe(held)})")
                continue
            try:
                der, response = fetch(bundle, timeout)
                store(bundle, der)  # verified: what a restart staples, even if the running HAProxy refuses it now
            except (OcspError, OSError) as exc:
                failed += 1
                kept = f"kept the last response ({describe(held)})" if not held.problem else held.problem
                print(f"{bundle.name}: OCSP update failed: {exc}; {kept}", file=sys.stderr)
                continue
            try:
                push(admin_socket, der)
            except OcspError as exc:
                failed += 1
                print(f"{bundle.name}: fetched and stored ({describe(response)}), not stapled: {exc}", file=sys.stderr)
                continue
            print(f"{bundle.name}: stapled ({describe(response)})")
    return 1 if failed else 0


__all__ = [
    "FETCH_TIMEOUT",
    "NEAR_EXPIRY_SECONDS",
    "PEM_CERTIFICATE",
    "OcspError",
    "Response",
    "companion",
    "fetch",
    "parse_status",
    "push",
    "read_response",
    "responder_url",
    "split_bundle",
    "store",
    "update",
]
