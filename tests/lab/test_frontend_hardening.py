"""The frontend a node serves, hardened (issue 13), checked with real HAProxy and real clients: the deploy's
own haproxy.cfg (lab/frontend.py) in a namespace, clients on the router side.

- TLS: Mozilla's intermediate key exchange groups only (X25519, P-256, P-384), the certificate chain served
  whole, Strict-Transport-Security only when the inventory sets it.
- The access log: path, status, bytes and timings of a presigned URL, never its signature or credential.
- Forwarding headers: what RGW gets in X-Forwarded-For is the address HAProxy saw, whatever the client sent.
- Reloads: keep-alive connections open across a reload lose no request.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.frontend import Frontend, inventory, render_config
from lab.keepalive import KeepAliveClient
from lab.procs import netns_exec, run
from lab.rootfs import ensure_unpacked, node_image
from ober_deploy.settings import node_settings
from tests.conftest import record_outcome, unique_prefix
from tests.deploy.support import make_chain

FrontendFactory = Callable[..., Frontend]
NAME = "s3.lab.example"


@pytest.fixture
def make_frontend(tmp_path: Path) -> Iterator[FrontendFactory]:
    made: list[Frontend] = []

    def build(config: Callable[[str], str] | None = None, **overrides: Any) -> Frontend:
        frontend = Frontend(tmp_path / f"fe{len(made)}", prefix=unique_prefix("hf"), data=inventory(**overrides))
        if config is not None:  # a variant of the deploy's config (to show what a line changes)
            rendered = frontend.render
            frontend.render = lambda: config(rendered())  # type: ignore[method-assign]
        made.append(frontend)
        return frontend.up()

    yield build
    for frontend in made:
        frontend.down()


# ---- TLS: a root CA, an intermediate CA, the VIP's certificate (what a site's CA issues)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """root.crt (what clients trust) and bundle.pem: certificate, intermediate, key (what HAProxy serves)."""
    return make_chain(tmp_path_factory.mktemp("chain"), NAME)


def handshake(frontend: Frontend, root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """openssl s_client to the VIP's 443, verifying against `root` only; `options` choose versions/groups."""
    argv = ["openssl", "s_client", "-connect", f"{frontend.vip}:443", "-servername", NAME, "-CAfile", str(root)]
    return subprocess.run(
        netns_exec(frontend.network.router, *argv, "-verify_return_error", "-showcerts", *options),
        input="",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_tls_offers_only_the_intermediate_profiles_groups_and_serves_the_chain(
    make_frontend: FrontendFactory, chain: dict[str, Path]
) -> None:
    frontend = make_frontend(ober_tls_certificates=[str(chain["bundle"])])
    for version in ("-tls1_3", "-tls1_2"):
        for group, shown in (("X25519", "X25519"), ("P-256", "ECDH, prime256v1"), ("P-384", "ECDH, secp384r1")):
            result = handshake(frontend, chain["root"], version, "-groups", group)
            assert result.returncode == 0, f"{version} {group} refused: {result.stderr[-500:]}"
            assert f"Server Temp Key: {shown}," in result.stdout, f"{version} {group}: {result.stdout[-1500:]}"
        # a client offering only X448 and P-521 (for TLS 1.2: with ECDHE suites only) gets no session
        refused = ["-groups", "X448:P-521"] + (["-cipher", "ECDHE"] if version == "-tls1_2" else [])
        result = handshake(frontend, chain["root"], version, *refused)
        assert result.returncode != 0, f"{version} with X448/P-521 only was accepted:\n{result.stdout[-800:]}"
        assert "Cipher is (NONE)" in result.stdout or "handshake failure" in result.stderr, result.stderr[-500:]
    # the whole chain: certificate and intermediate, verified by a client that trusts only the root
    result = handshake(frontend, chain["root"])
    served = re.findall(r"^ *\d+ s:(.*)$", result.stdout, re.M)
    assert [s.replace(" ", "") for s in served] == [f"CN={NAME}", "CN=labintermediate"], result.stdout[:2000]
    assert "Verify return code: 0 (ok)" in result.stdout


def test_sslyze_finds_no_failure_of_mozillas_intermediate_profile_but_the_labs_ca(
    make_frontend: FrontendFactory, chain: dict[str, Path]
) -> None:
    """sslyze, an independent scanner, against the VIP: protocols, suites, groups, vulnerabilities checked
    against Mozilla's intermediate profile. The one failure it may report is the path validation of the
    lab's certificate (issued by a CA no public trust store has)."""
    frontend = make_frontend(ober_tls_certificates=[str(chain["bundle"])])
    scan = frontend.client(
        sys.executable, "-m", "sslyze", "--mozilla_config=intermediate", f"{NAME}:443{{{frontend.vip}}}", timeout=300
    )
    report = scan.stdout
    assert "SCANS COMPLETED" in report, scan.stderr[-2000:]
    curves = re.search(r"Supported curves: +(.*)", report)
    assert curves and curves.group(1).strip() == "X25519, secp256r1, secp384r1", report[-3000:]
    compliance = report[report.index("COMPLIANCE AGAINST TLS CONFIGURATION") :]
    failures = re.findall(r"^ +\* (\w+):", compliance, re.M)
    record_outcome("sslyze --mozilla_config=intermediate (lab frontend, HAProxy here)", f"failures: {failures}")
    assert failures == ["certificate_path_validation"], compliance


def test_haproxy_3_0_of_debian_13_accepts_the_same_config(chain: dict[str, Path], tmp_path: Path) -> None:
    """The keywords above on Debian 13's HAProxy 3.0 (this machine has 2.6): `haproxy -c` in a chroot of the
    lab's Debian 13 node image (read-only; the config is mounted into it), with the config a 3.0 node gets."""
    root = ensure_unpacked(node_image("trixie"))
    version = run("chroot", str(root), "haproxy", "-v").stdout
    assert "version 3.0" in version, version
    settings = node_settings("lab-node", inventory(ober_tls_certificates=[str(chain["bundle"])], ober_hsts_max_age=600))
    config = render_config(settings, tmp_path, Path("/mnt"), version)
    assert "ssl-default-bind-curves X25519:P-256:P-384" in config and "timeout client-hs" in config
    (tmp_path / "haproxy.cfg").write_text(config)
    script = 'mount --bind "$1" "$2/mnt" && exec chroot "$2" haproxy -c -f /mnt/haproxy.cfg'
    result = run("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(tmp_path), str(root),
                 check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr  # 3.0 says nothing when it is valid
    assert "ALERT" not in result.stdout + result.stderr and "WARNING" not in result.stdout + result.stderr


def curl_headers(frontend: Frontend, url: str, root: Path | None = None) -> str:
    tls = ["--cacert", str(root), "--resolve", f"{NAME}:443:{frontend.vip}"] if root else []
    result = frontend.client("curl", "-sS", "-D", "-", "-o", "/dev/null", *tls, url)
    assert result.returncode == 0, result.stderr
    return result.stdout.lower()


def test_hsts_only_when_the_inventory_sets_it_and_only_over_tls(
    make_frontend: FrontendFactory, chain: dict[str, Path]
) -> None:
    tls = {"ober_tls_certificates": [str(chain["bundle"])]}
    frontend = make_frontend(**tls)
    assert "strict-transport-security" not in curl_headers(frontend, f"https://{NAME}/", chain["root"])
    frontend.down()
    frontend = make_frontend(ober_hsts_max_age=63072000, **tls)
    headers = curl_headers(frontend, f"https://{NAME}/", chain["root"]).splitlines()
    assert "strict-transport-security: max-age=63072000" in [line.strip() for line in headers], headers
    # over plain HTTP the header means nothing to a browser (RFC 6797 8.1): not sent
    assert "strict-transport-security" not in curl_headers(frontend, f"http://{frontend.vip}/")


def test_a_client_cannot_choose_the_address_rgw_sees(make_frontend: FrontendFactory) -> None:
    frontend = make_frontend()
    forged = ["X-Forwarded-For: 192.0.2.66", "Forwarded: for=192.0.2.66;proto=https", "X-Real-IP: 192.0.2.66"]
    argv = ["curl", "-sS", f"http://{frontend.vip}/echo-headers"]
    for header in forged:
        argv += ["-H", header]
    result = frontend.client(*argv)
    assert result.returncode == 0, result.stderr
    received = [line.lower() for line in result.stdout.splitlines()]
    assert "x-forwarded-for: 198.51.100.1" in received  # the router side's address, as HAProxy saw it
    assert not [line for line in received if "192.0.2.66" in line], received
    assert not [line for line in received if line.startswith(("forwarded:", "x-real-ip:"))], received


# what a presigned URL carries that lets its holder act as the signer (SigV4 and SigV2 names)
CREDENTIALS = {"x-amz-signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "signature"}
PRESIGN = r"""
import json, sys
import boto3
from botocore.config import Config
urls = {}
for version in ("s3v4", "s3"):
    client = boto3.client(
        "s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="AKIAOBERLABEXAMPLE01",
        aws_secret_access_key="lab-secret-key-not-real-0123456789abcdef", aws_session_token="ober-lab-session-token",
        config=Config(signature_version=version, s3={"addressing_style": "path"}),
    )
    urls[version] = client.generate_presigned_url(
        "get_object", Params={"Bucket": "lab-bucket", "Key": "dir/object-1", "VersionId": "v7"}, ExpiresIn=300
    )
print(json.dumps(urls))
"""


def test_the_access_log_of_a_presigned_url_has_no_signature_or_credential(make_frontend: FrontendFactory) -> None:
    """URLs presigned by boto3 (SigV4 with an STS session token, and SigV2) through the VIP: HAProxy's log line
    keeps method, path, the other parameters, status, bytes and timings, and masks every credential."""
    frontend = make_frontend()
    urls = json.loads(run(sys.executable, "-c", PRESIGN, f"http://{frontend.vip}").stdout)
    for version, url in urls.items():
        parameters = dict(re.findall(r"[?&]([^=&]+)=([^&]+)", url))
        credentials = {k: v for k, v in parameters.items() if k.lower() in CREDENTIALS}
        assert len(credentials) >= 3, f"{version}: {sorted(parameters)}"  # signature, key id, session token
        result = frontend.client("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url)
        assert result.stdout == "200", result.stderr
        line = frontend.log_lines(containing="object-1")[-1]
        record_outcome(f"access log of a presigned URL ({version})", line.split("]: ", 1)[-1].strip())
        for name, value in credentials.items():
            assert value not in line, f"{version}: the value of {name} is in the log: {line}"
            assert f"{name.lower()}=***" in line.lower(), line
        assert re.search(r' 200 \d+ .*"GET /lab-bucket/dir/object-1\?\S*versionId=v7\S* HTTP/1\.1"$', line.strip()), (
            line
        )
        assert re.search(r" \d+/\d+/\d+/\d+/\d+ 200 ", line), f"timings and status: {line}"
        frontend._lines.clear()


# ---- reloads with keep-alive clients


def keepalive_failures(frontend: Frontend, reloads: int, connections: int = 6) -> tuple[int, list[str]]:
    """`connections` keep-alive connections each make a request, then across each of `reloads` reloads their
    next request: how many of those next requests failed."""
    client = KeepAliveClient(frontend.network.router, frontend.vip, connections)
    failed, errors = 0, []
    try:
        assert client.round()["failed"] == 0  # every connection open and idle
        for _ in range(reloads):
            frontend.reload()
            time.sleep(0.5)  # clients do not send the instant a reload ends
            result = client.round()
            failed += result["failed"]
            errors += result["errors"]
    finally:
        client.close()
    return failed, errors


def test_keepalive_connections_lose_no_request_across_reloads(make_frontend: FrontendFactory) -> None:
    frontend = make_frontend()
    failed, errors = keepalive_failures(frontend, reloads=5)
    record_outcome("keep-alive requests failed across 5 reloads, 6 connections (deployed config)", f"{failed}/30")
    assert failed == 0, errors
    # the same without `option idle-close-on-response`: what the option is there for (issue 13: 5-6 of 6)
    frontend.down()
    without = make_frontend(config=lambda text: text.replace("    option idle-close-on-response\n", ""))
    failed, errors = keepalive_failures(without, reloads=5)
    record_outcome("keep-alive requests failed across 5 reloads, 6 connections (without the option)", f"{failed}/30")
    assert failed > 0, "without idle-close-on-response no request failed: this test could not see a failure"
