"""The lab's certificate authority: the fleet's TLS bundle is signed by it, and clients verify against it.

A site's S3 endpoint has a certificate from the site's CA (or a public one) and clients verify it; a
self-signed certificate would push every test towards `-k`/`verify=False`, which hides the very mistakes
TLS verification exists to catch (a wrong name, a missing address in subjectAltName).

    ca = LabCa(workdir)
    bundle = ca.server_bundle("s3.lab.example", ["203.0.113.10", "2001:db8:203::10"])  # HAProxy's `crt` file
    ca.certificate                                                                      # what clients trust
"""

from __future__ import annotations

import ipaddress
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

    def server_bundle(self, name: str, addresses: list[str], key_type: str = "rsa") -> Path:
        """Certificate (signed by this CA) and key in one PEM file, as HAProxy's `crt` loads it; `key_type`
        "rsa" (2048 bits) or "ecdsa" (P-256), the two kinds a site's certificate is.

        subjectAltName carries `name` and every address, so a client may connect by name or by address
        and still verify the certificate.
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
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        run(
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.certificate), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", str(DAYS), "-sha256", "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
        bundle.write_text(cert.read_text() + key.read_text())
        return bundle


__all__ = ["LabCa"]
