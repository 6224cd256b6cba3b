"""`python -m ober_deploy.check INVENTORY`: the deploy's validation with no SSH, as an operator runs it.

Run on the example inventory (inventories/prod.py) in a network namespace without any network: none of
its hosts is reachable and no name resolves, and the check still prints every problem of every host (the
example's certificate is not in the repository, its RGW names are the site's), bounded in time; with
`--data` giving a certificate and skipping DNS, as pyinfra's `--data` would, every host is OK.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.deploy.conftest import Bundles
from tests.deploy.support import REPO

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")
HOSTS = ("ingress01", "ingress02", "ingress03", "ingress04")


def offline_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "ober_deploy.check", "inventories/prod.py", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prod_inventory_with_no_host_reachable_prints_every_problem() -> None:
    result = offline_check()
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for host in HOSTS:
        assert f"{host}: ober_tls_certificates[0]: 'certs/s3.example.org.pem' is unusable: no such file" in (
            "\n".join(lines)
        )
        unresolved = [line for line in lines if line.startswith(f"{host}: ober_backends: ")]
        assert len(unresolved) == 8 and all("does not resolve" in line for line in unresolved), lines
    assert len(lines) == 4 * 9, lines
    assert "Traceback" not in result.stderr
    assert "36 problem(s)" in result.stderr


def test_prod_inventory_with_a_certificate_and_no_dns_check_is_ok(bundles: Bundles) -> None:
    result = offline_check("--data", "ober_check_dns=false", "--data", f'ober_tls_certificates=["{bundles.good}"]')
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == list(HOSTS)
    assert "ingress03: OK (AS65101, 4 peer(s), VIPs 203.0.113.10/32, 203.0.113.11/32, 2001:db8:203::10/128" in (
        result.stdout
    )


@pytest.mark.parametrize(
    ("vips", "line"),
    [
        ("127.0.0.1/32", "ober_vips[0].prefix: '127.0.0.1/32' is a loopback address"),
        ("203.0.113.3/32", "ober_vips[0].prefix: '203.0.113.3/32' is the host's address, ober_router_id"),
        ("203.0.113.10/32,224.0.0.5/32", "ober_vips[1].prefix: '224.0.0.5/32' is a multicast address"),
    ],
)
def test_data_on_the_command_line_is_checked_like_the_inventory(bundles: Bundles, vips: str, line: str) -> None:
    result = offline_check(
        "--data",
        "ober_check_dns=false",
        "--data",
        f'ober_tls_certificates=["{bundles.good}"]',
        "--data",
        f"ober_vips={vips}",
    )
    assert result.returncode == 1
    assert f"ingress03: {line}" in result.stdout, result.stdout
