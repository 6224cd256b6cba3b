"""The lab's certificate authority: the fleet's TLS bundle is signed by it, and clients verify against it.

A site's S3 endpoint has a certificate from the site's CA (or a public one) and clients verify it; a
self-signed certificate would push every test towards `-k`/`verify=False`, which hides the very mistakes
TLS verification exists to catch (a wrong name, a missing address in subjectAltName).

    ca = LabCa(workdir)
    bundle = ca.server_bundle("s3.lab.example", ["203.0.113.10", "2001:db8:203::10"])  # HAProxy's `crt` file
    ca.certificate                                                                      # what clients trust

With an OCSP responder (`ober_ocsp_stapling`): the certificate names the responder (AIA) and the bundle
carries the CA's certificate as its chain (the issuer an OCSP request names); the CA's index says which
certificates are valid or revoked, and `openssl ocsp` answers from it:

    bundle = ca.server_bundle("s3.lab.example", [...], ocsp_url="http://127.0.0.1:8888/")
    ca.revoke("s3.lab.example")
    supervisor.start("ocsp", ca.responder_argv(8888), netns=node)
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

from lab.procs import run

DAYS = 30
# `openssl req` arguments of each kind of server key, and the key usage its certificate states (an ECDSA key
# signs; an RSA key also decrypts TLS 1.2's RSA key exchange)
KEYS = {"rsa": ("-newkey", "rsa:2048"), "ecdsa": ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256")}
USAGE = {"rsa": "digitalSignature,keyEncipherment", "ecdsa": "digitalSignature"}


class LabCa:
    """A CA key and certificate in `workdir`, made on first use; only `openssl` is needed."""

    def __init__(self, workdir: Path, name: str = "ober lab CA") -> None:
        self.workdir = workdir
        self.name = name
        self.key = workdir / "lab-ca.key"
        self.certificate = workdir / "lab-ca.crt"
        self.index = workdir / "lab-ca.index"  # the CA database `openssl ocsp -index` answers from

    def ensure(self) -> Path:
        """The CA certificate (made once: a 2048-bit RSA key, CA:TRUE, keyCertSign)."""
        if not self.certificate.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            run(
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(DAYS),
                "-subj", f"/CN={self.name}", "-keyout", str(self.key), "-out", str(self.certificate),
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-addext", "subjectKeyIdentifier=hash",
            )  # fmt: skip
        return self.certificate

    def server_bundle(
        self, name: str, addresses: list[str], key_type: str = "rsa", ocsp_url: str | None = None
    ) -> Path:
        """Certificate (signed by this CA) and key in one PEM file, as HAProxy's `crt` loads it; `key_type`
        "rsa" (2048 bits) or "ecdsa" (P-256), the two kinds a site's certificate is.

        subjectAltName carries `name` and every address, so a client may connect by name or by address
        and still verify the certificate. With `ocsp_url` the certificate names that responder, the bundle
        carries the CA's certificate after it (its issuer) and the CA's index lists it as valid.
        """
        if key_type not in KEYS:
            raise ValueError(f"key_type {key_type!r}: expected one of {sorted(KEYS)}")
        bundle = self.workdir / f"{name}.pem"
        if bundle.exists():
            return bundle
        self.ensure()
        key, csr, cert = (self.workdir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        run(
            "openssl", "req", "-new", *KEYS[key_type], "-nodes", "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(csr),
        )  # fmt: skip
        alt = [f"DNS:{name}", *(f"IP:{ipaddress.ip_address(a)}" for a in addresses)]
        extensions = self.workdir / f"{name}.ext"
        extensions.write_text(
            f"subjectAltName={','.join(alt)}\n"
            "basicConstraints=critical,CA:FALSE\n"
            f"keyUsage=critical,{USAGE[key_type]}\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n" + (f"authorityInfoAccess=OCSP;URI:{ocsp_url}\n" if ocsp_url else "")
        )
        run(
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.certificate), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", str(DAYS), "-sha256", "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        chain = self.certificate.read_text() if ocsp_url else ""
        bundle.write_text(cert.read_text() + chain + key.read_text())
        if ocsp_url:
            self._record(cert)
        return bundle

    def _record(self, cert: Path, revoked: bool = False) -> None:
        """`cert` in the CA's index (openssl's `ca` database format), valid or revoked."""
        fields = dict(
            line.split("=", 1)
            for line in run("openssl", "x509", "-in", str(cert), "-noout", "-serial", "-enddate").stdout.splitlines()
        )
        subject = run("openssl", "x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "compat").stdout
        end = datetime.strptime(fields["notAfter"].strip(), "%b %d %H:%M:%S %Y %Z").strftime("%y%m%d%H%M%SZ")
        serial = fields["serial"].strip()
        when = datetime.now(tz=UTC).strftime("%y%m%d%H%M%SZ") if revoked else ""
        line = f"{'R' if revoked else 'V'}\t{end}\t{when}\t{serial}\tunknown\t{subject.split('=', 1)[1].strip()}\n"
        kept = self.index.read_text().splitlines(True) if self.index.exists() else []
        self.index.write_text("".join(old for old in kept if old.split("\t")[3] != serial) + line)

    def revoke(self, name: str) -> None:
        """The certificate of `server_bundle(name, ...)` revoked in the CA's index (the responder re-reads it)."""
        self._record(self.workdir / f"{name}.crt", revoked=True)

    def response(self, name: str, minutes: int, out: Path) -> Path:
        """The DER response the responder would give for `server_bundle(name, ...)`'s certificate, valid
        `minutes`, made offline (`openssl ocsp` answering a request file): what `<bundle>.ocsp` holds."""
        request = self.workdir / f"{name}.ocsp-request"
        run("openssl", "ocsp", "-issuer", str(self.certificate), "-cert", str(self.workdir / f"{name}.crt"),
            "-no_nonce", "-reqout", str(request))  # fmt: skip
        run("openssl", "ocsp", "-index", str(self.index), "-CA", str(self.certificate), "-rsigner",
            str(self.certificate), "-rkey", str(self.key), "-reqin", str(request), "-nmin", str(minutes),
            "-respout", str(out))  # fmt: skip
        return out

    def responder_argv(self, port: int, minutes: int = 10) -> list[str]:
        """`openssl ocsp` answering for this CA on `port` (every address of the namespace it runs in: run it in
        a lab namespace), signing with the CA's own key, each response valid `minutes`."""
        self.ensure()
        if not self.index.exists():
            self.index.write_text("")
        return [
            "openssl", "ocsp", "-index", str(self.index), "-port", str(port), "-rsigner", str(self.certificate),
            "-rkey", str(self.key), "-CA", str(self.certificate), "-nmin", str(minutes), "-ignore_err",
        ]  # fmt: skip


__all__ = ["LabCa"]
