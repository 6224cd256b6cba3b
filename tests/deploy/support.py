"""Helpers of the deploy tests: inventory data that validates, TLS bundles made by `openssl`, the real tools.

Nothing here fakes what it checks: bundles are real PEM files, the tools are the installed `haproxy` and
this venv's `exabgp` and `ober-health`. Only DNS is injected (a resolver mapping), because the names of
an example site do not resolve here.
"""

from __future__ import annotations

import copy
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
EXABGP = str(VENV_BIN / "exabgp")
OBER_HEALTH = str(VENV_BIN / "ober-health")
PYINFRA = str(VENV_BIN / "pyinfra")

HOST = "edge-7"
ROUTER_V4 = "198.51.100.1"
ROUTER_V6 = "2001:db8:100::1"
NODE_V4 = "198.51.100.11"
NODE_V6 = "2001:db8:100::11"
VIP_V4 = "203.0.113.10/32"
VIP_V6 = "2001:db8:203::10/128"

# what the example site's backend names resolve to (inside prod.py's ober_whitelist_backend 203.0.113.64/26)
DNS: dict[str, list[str]] = {f"rgw{i:02d}.storage.example.org": [f"203.0.113.{70 + i}"] for i in range(1, 9)}
DNS |= {"rgw01.internal": ["192.0.2.21"], "rgw02.internal": ["192.0.2.22"]}


def resolver(name: str) -> list[str]:
    """The injected DNS: names in `DNS` resolve, every other name does not."""
    return list(DNS.get(name, []))


def site_data(**overrides: Any) -> dict[str, Any]:
    """One node's `ober_` data that validates (IPv4 only, HTTP only, backends by name), with `overrides`."""
    data: dict[str, Any] = {
        "ober_local_asn": 65001,
        "ober_router_id": NODE_V4,
        "ober_peers": [{"address": ROUTER_V4, "asn": 65000}],
        "ober_vips": [VIP_V4],
        "ober_backends": "rgw[01-02].internal:7480",
        "ober_http": True,
    }
    data.update(overrides)
    return data


def with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """`data` on top of group_data/all.py, as pyinfra layers host data over the `all` group."""
    defaults = {k: v for k, v in runpy.run_path(str(REPO / "group_data" / "all.py")).items() if k.startswith("ober_")}
    return copy.deepcopy(defaults) | data


def prod_hosts(certificate: Path) -> list[tuple[str, dict[str, Any], str | None]]:
    """inventories/prod.py as (name, data, address) the way ober_deploy.plan hands it to validate_inventory,
    with the controller's certificate path pointing at `certificate` (the example's file is not in the repo)."""
    inventory = runpy.run_path(str(REPO / "inventories" / "prod.py"))
    nodes, group = inventory["ingress"]
    hosts = []
    for name, host_data in nodes:
        data = with_defaults({**copy.deepcopy(group), **host_data})
        data["ober_tls_certificates"] = [str(certificate)]
        hosts.append((name, data, host_data.get("ssh_hostname")))
    return hosts


def run(
    argv: list[str], cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env)


def tool_chroot(root: Path, tools: list[str]) -> Path:
    """A directory pyinfra's @chroot connector accepts, holding only `tools` (from this machine, with the
    libraries they link) in /bin: nothing else could run there."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    for tool in tools:
        binary = Path(shutil.which(tool) or f"/bin/{tool}").resolve()
        shutil.copy(binary, root / "bin" / tool)
        for library in (Path(word) for word in run(["ldd", str(binary)]).stdout.split() if word.startswith("/")):
            target = root / library.relative_to("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(library, target)
    return root


def _openssl(*args: str, cwd: Path) -> None:
    result = run(["openssl", *args], cwd=cwd)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed:\n{result.stdout}{result.stderr}"


def _new_key_and_csr(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    key, csr = directory / f"{name}.key", directory / f"{name}.csr"
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", f"/CN={common_name}", cwd=directory,
    )  # fmt: skip
    return key, csr


def make_bundle(directory: Path, name: str, common_name: str = "s3.example.org") -> Path:
    """A self-signed certificate valid for one day, with its key, in one PEM file as HAProxy's `crt` wants."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
        "-subj", f"/CN={common_name}", "-addext", f"subjectAltName=DNS:{common_name}", cwd=directory,
    )  # fmt: skip
    bundle = directory / f"{name}.pem"
    bundle.write_text(cert.read_text() + key.read_text())
    return bundle


def make_mismatched_bundle(directory: Path, name: str, good: Path) -> Path:
    """`good`'s certificate with a freshly generated key that is not its own."""
    key, _ = _new_key_and_csr(directory, f"{name}-other", "other.example.org")
    text = good.read_text()
    certificate = text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    bundle = directory / f"{name}.pem"
    bundle.write_text(certificate + key.read_text())
    return bundle


def make_expired_bundle(directory: Path, name: str) -> Path:
    """A self-signed certificate that expired on 2020-01-02, with its key.

    OpenSSL 3.0's `req -x509`/`x509 -req` refuse a past end date (`-days` must be positive, no `-not_after`
    before 3.4); `openssl ca -selfsign` takes explicit `-startdate`/`-enddate`, so that makes it."""
    work = directory / f"{name}-ca"
    work.mkdir(parents=True, exist_ok=True)
    key, csr = _new_key_and_csr(work, name, "expired.example.org")
    (work / "index.txt").write_text("")
    (work / "serial").write_text("01\n")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca = test\n"
        "[test]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\n"
        "policy = any\nunique_subject = no\n"
        "[any]\ncommonName = supplied\n"
    )
    cert = work / f"{name}.crt"
    _openssl(
        "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", str(key), "-in", str(csr), "-out", str(cert),
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-notext", cwd=work,
    )  # fmt: skip
    bundle = directory / f"{name}.pem"
    bundle.write_text(cert.read_text() + key.read_text())
    return bundle


def make_chain(directory: Path, name: str = "s3.lab.example", address: str = "203.0.113.10") -> dict[str, Path]:
    """What a site's CA issues: a root (what clients trust), an intermediate, and the server's certificate
    for `name` and `address` signed by the intermediate. `bundle` is certificate + intermediate + key (what
    HAProxy serves), `inter_key`/`inter` sign more, `root` verifies."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lab root",
             "-keyout", "root.key", "-out", "root.crt", *ca, cwd=directory)  # fmt: skip
    (directory / "inter.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=lab intermediate",
             "-keyout", "inter.key", "-out", "inter.csr", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.crt", "-CAkey", "root.key", "-CAcreateserial",
             "-days", "2", "-extfile", "inter.ext", "-out", "inter.crt", cwd=directory)  # fmt: skip
    (directory / "leaf.ext").write_text(f"subjectAltName=DNS:{name},IP:{address}\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", "leaf.key", "-out", "leaf.csr", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "inter.crt", "-CAkey", "inter.key", "-CAcreateserial",
             "-days", "2", "-extfile", "leaf.ext", "-out", "leaf.crt", cwd=directory)  # fmt: skip
    bundle = directory / f"{name}.pem"
    leaf, inter = (directory / "leaf.crt").read_text(), (directory / "inter.crt").read_text()
    bundle.write_text(leaf + inter + (directory / "leaf.key").read_text())
    return {"root": directory / "root.crt", "inter": directory / "inter.crt", "bundle": bundle,
            "leaf": directory / "leaf.crt", "key": directory / "leaf.key"}  # fmt: skip
