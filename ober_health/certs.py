"""The TLS bundles HAProxy loads on this node (`crt` of its bind lines), read as HAProxy reads them: present,
certificate and key in one PEM file, the key matching the certificate, and the certificate's end date.

Standard library only (nodes get no extra package): `ssl.SSLContext.load_cert_chain` refuses a key that does
not match, and `ssl._ssl._test_decode_cert` (CPython's own decoder, used by its test suite) reads the end
date of the first certificate in a PEM file.
"""

from __future__ import annotations

import re
import shlex
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# HAProxy's companion files in a crt directory (loaded with the bundle of the same name, not bundles)
COMPANIONS = (".key", ".ocsp", ".issuer", ".sctl")
EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class Bundle:
    path: str
    problem: str  # "" when HAProxy can load it and it has not expired
    not_after: float | None = None  # epoch of the certificate's end date

    def days_left(self, now: float | None = None) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - (time.time() if now is None else now)) / 86400


def crt_paths(haproxy_cfg: str) -> list[str]:
    """The `crt` arguments of haproxy.cfg's bind lines (a file or a directory), in order, once each."""
    found: list[str] = []
    for line in haproxy_cfg.splitlines():
        code = line.split("#", 1)[0].strip()
        if not code.startswith("bind "):
            continue
        try:
            words = shlex.split(code)
        except ValueError:
            words = code.split()
        for index, word in enumerate(words[:-1]):
            if word == "crt" and words[index + 1] not in found:
                found.append(words[index + 1])
    return found


def bundles_in(crt: str) -> list[Path]:
    """The PEM files HAProxy loads for one `crt` argument: the file itself, or each bundle in the directory
    (HAProxy skips the companions and files starting with a dot, such as `ober ocsp-update`'s temporary file)."""
    path = Path(crt)
    if not path.is_dir():
        return [path]
    return sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.endswith(COMPANIONS) and not p.name.startswith(".")
    )


def not_after(path: Path) -> float | None:
    """The end date (epoch) of the first certificate in a PEM file; None when there is none or it is unreadable."""
    decode: Any = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    try:
        text = decode(str(path))["notAfter"]  # "Jun  1 12:00:00 2027 GMT"
    except (ssl.SSLError, OSError, KeyError, ValueError):
        return None
    return datetime.strptime(re.sub(r"\s+", " ", text), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC).timestamp()


def inspect_bundle(path: Path, now: float | None = None, companion_key: bool = True) -> Bundle:
    """What HAProxy would make of one bundle, in words. `companion_key`: a key in `<bundle>.key` counts, as
    HAProxy loads it (on a node); the deploy ships certificate and key in one file, and checks without it."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return Bundle(str(path), "no such file")
    except OSError as exc:
        return Bundle(str(path), f"not readable ({exc.strerror or exc})")
    if "-----BEGIN CERTIFICATE-----" not in text:
        return Bundle(str(path), "no certificate in the PEM bundle")
    separate_key = companion_key and Path(str(path) + ".key").exists()
    if "PRIVATE KEY-----" not in text and not separate_key:
        return Bundle(str(path), "no private key in it (HAProxy needs certificate and key in one file)")
    end = not_after(path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    key = str(path) + ".key" if "PRIVATE KEY-----" not in text else None
    try:
        context.load_cert_chain(str(path), key)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            return Bundle(str(path), "the private key does not match the certificate", end)
        return Bundle(str(path), f"not loadable ({exc.reason or exc})", end)
    if end is not None and end <= (time.time() if now is None else now):
        ended = datetime.fromtimestamp(end, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return Bundle(str(path), f"the certificate has expired (on {ended})", end)
    return Bundle(str(path), "", end)
