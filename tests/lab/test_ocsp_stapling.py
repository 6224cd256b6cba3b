"""OCSP stapling (`ober_ocsp_stapling`, issue 13) with real tools: the lab CA's OCSP responder (`openssl ocsp`
on the node's loopback, the URL its certificates name), HAProxy with the deploy's own haproxy.cfg and the
empty `<bundle>.ocsp` the deploy writes (lab/frontend.py), `ober ocsp-update` run on the node as the timer runs
it, and `openssl s_client -status` on the client side of the router: what a TLS client is stapled.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.frontend import Frontend, inventory, render_config
from lab.procs import netns_exec, run, wait_for
from lab.rootfs import ensure_unpacked, node_image
from lab.tlsca import LabCa
from ober_health import ocsp
from ober_health.doctor import FAIL, PASS, ocsp_check
from tests.conftest import unique_prefix

GOOD, REVOKED = "s3.lab.example", "revoked.lab.example"
RESPONDER_PORT = 8880
RESPONDER = f"http://127.0.0.1:{RESPONDER_PORT}/"
OBER = str(Path(sys.prefix) / "bin" / "ober")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCa:
    """The lab CA with two server certificates naming its responder: one valid, one revoked."""
    authority = LabCa(tmp_path_factory.mktemp("ocsp-ca"))
    authority.server_bundle(GOOD, ["203.0.113.10"], ocsp_url=RESPONDER)
    authority.server_bundle(REVOKED, ["203.0.113.10"], ocsp_url=RESPONDER)
    authority.revoke(REVOKED)
    return authority


def bundles(ca: LabCa) -> list[str]:
    return [str(ca.workdir / f"{GOOD}.pem"), str(ca.workdir / f"{REVOKED}.pem")]


class Debian13Frontend(Frontend):
    """The same frontend with Debian 13's HAProxy 3.0 (this machine has 2.6): HAProxy chrooted into the lab's
    Debian 13 node image (read-only: the workdir is mounted at /mnt and HAProxy's chroot on a tmpfs, in a
    private mount namespace), with the config a 3.0 node gets."""

    SEEN_AS = Path("/mnt")

    def __init__(self, workdir: Path, prefix: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(workdir, prefix, data)
        self.root = ensure_unpacked(node_image("trixie"))

    def render(self) -> str:
        version = run("chroot", str(self.root), "haproxy", "-v").stdout
        assert "version 3.0" in version, version
        return render_config(self.settings, self.workdir, self.SEEN_AS, version)

    def start_haproxy(self) -> None:
        script = (
            'mount --bind "$1" "$2/mnt" && mount -t tmpfs tmpfs "$2/var/lib/haproxy" && '
            'mkdir "$2/var/lib/haproxy/dev" && touch "$2/var/lib/haproxy/dev/log" && '
            'mount --bind "$3" "$2/var/lib/haproxy/dev/log" && exec chroot "$2" haproxy -W -db -f /mnt/haproxy.cfg'
        )
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        argv += [str(self.workdir), str(self.root), str(self.log_socket)]
        self.supervisor.start("haproxy", argv, netns=self.node)


def frontend(tmp_path: Path, ca: LabCa, stapling: bool, kind: type[Frontend] = Frontend) -> Frontend:
    data = inventory(ober_tls_certificates=bundles(ca), ober_ocsp_stapling=stapling)
    fe = kind(tmp_path / "fe", prefix=unique_prefix("oc"), data=data).up()
    # responses valid a week, as public CAs give them (`ober doctor` warns for one ending within 12 h)
    fe.supervisor.start("ocsp-responder", ca.responder_argv(RESPONDER_PORT, minutes=7 * 24 * 60), netns=fe.node)
    return fe


def stapled(fe: Frontend, name: str) -> str:
    """What `openssl s_client -status` is stapled when it asks the VIP for `name` (its OCSP lines)."""
    result = fe.client(
        "openssl", "s_client", "-connect", f"{fe.vip}:443", "-servername", name, "-status",
        timeout=15,
    )  # fmt: skip
    out = result.stdout
    if "OCSP response: no response sent" in out:
        return "no response sent"
    lines = [line.strip() for line in out.splitlines() if re.match(r"\s*(OCSP Response Status|Cert Status):", line)]
    return "; ".join(lines)


def ocsp_update(fe: Frontend, *args: str) -> subprocess.CompletedProcess[str]:
    """`ober ocsp-update` on the node (its namespace: the responder on its loopback), with the lab's paths."""
    if isinstance(fe, Debian13Frontend):  # its haproxy.cfg names the files as HAProxy sees them: under /mnt
        script = 'mount --bind "$1" /mnt && shift && exec "$@"'
        node = [*netns_exec(fe.node, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh")]
        node += [str(fe.workdir), OBER, "ocsp-update", "--haproxy-config", "/mnt/haproxy.cfg"]
        node += ["--admin-socket", "/mnt/admin.sock"]
    else:
        node = netns_exec(fe.node, OBER, "ocsp-update", "--haproxy-config", str(fe.config))
        node += ["--admin-socket", str(fe.workdir / "admin.sock")]
    return subprocess.run([*node, *args], capture_output=True, text=True, timeout=60, check=False)


def responder_listening(fe: Frontend) -> bool:
    """The responder bound (asked with `ss`: a probe connection would wedge `openssl ocsp`, which serves one
    client at a time and waits for its request)."""
    out = subprocess.run(
        netns_exec(fe.node, "ss", "-Hltn", f"sport = :{RESPONDER_PORT}"),
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    ).stdout
    return bool(out.strip())


def test_stapled_without_a_reload_good_and_revoked_as_the_responder_says(tmp_path: Path, ca: LabCa) -> None:
    fe = frontend(tmp_path, ca, stapling=True)
    try:
        wait_for(lambda: responder_listening(fe), timeout=10, what="the lab CA's OCSP responder")
        master, workers = fe.supervisor.pid("haproxy"), fe.workers()
        assert stapled(fe, GOOD) == "no response sent"  # the deploy's empty file: stapling on, nothing yet

        update = ocsp_update(fe)
        assert update.returncode == 0, update.stderr
        assert f"{GOOD}.pem: stapled (good" in update.stdout
        assert f"{REVOKED}.pem: stapled (revoked" in update.stdout

        assert stapled(fe, GOOD) == "OCSP Response Status: successful (0x0); Cert Status: good"
        assert stapled(fe, REVOKED) == "OCSP Response Status: successful (0x0); Cert Status: revoked"
        assert (fe.supervisor.pid("haproxy"), fe.workers()) == (master, workers)  # no reload, no new worker

        # kept for a restart, as `ober doctor` reads it
        certs = fe.workdir / "certs"
        good_check, revoked_check = (ocsp_check(certs / f"{name}.pem") for name in (GOOD, REVOKED))
        assert good_check is not None and good_check.status == PASS, good_check
        assert revoked_check is not None and revoked_check.status == FAIL and "REVOKED" in revoked_check.what

        # a restart staples the stored responses at once
        fe.supervisor.stop("haproxy")
        fe.start_haproxy()
        wait_for(fe.serving, timeout=10, what="HAProxy serving after its restart")
        assert stapled(fe, GOOD) == "OCSP Response Status: successful (0x0); Cert Status: good"

        # the responder gone: the fetch fails, says so, and the last good response stays stapled
        fe.supervisor.kill("ocsp-responder", signal.SIGKILL)
        wait_for(lambda: not responder_listening(fe), timeout=10, what="the responder gone")
        failed = ocsp_update(fe, "--force", "--timeout", "2")  # OpenSSL retries a refused connection until then
        assert failed.returncode == 1
        assert f"{GOOD}.pem: OCSP update failed: {RESPONDER}" in failed.stderr
        assert "kept the last response (good, next update" in failed.stderr
        assert stapled(fe, GOOD) == "OCSP Response Status: successful (0x0); Cert Status: good"
        assert ocsp.read_response(ocsp.companion(certs / f"{GOOD}.pem")).status == "good"
    finally:
        fe.down()


def test_without_the_option_nothing_is_stapled(tmp_path: Path, ca: LabCa) -> None:
    fe = frontend(tmp_path, ca, stapling=False)
    try:
        wait_for(lambda: responder_listening(fe), timeout=10, what="the lab CA's OCSP responder")
        update = ocsp_update(fe)
        assert (update.returncode, update.stdout, update.stderr) == (0, "", "")
        assert stapled(fe, GOOD) == "no response sent"
        assert not list((fe.workdir / "certs").glob("*.ocsp"))
    finally:
        fe.down()


def test_haproxy_3_0_of_debian_13_staples_the_same_way(tmp_path: Path, ca: LabCa) -> None:
    """The same files and the same admin command on Debian 13's HAProxy 3.0: the empty `<bundle>.ocsp` turns
    stapling on, `set ssl ocsp-response` fills it without a reload, good and revoked as the responder says."""
    fe = frontend(tmp_path, ca, stapling=True, kind=Debian13Frontend)
    try:
        wait_for(lambda: responder_listening(fe), timeout=10, what="the lab CA's OCSP responder")
        master, workers = fe.supervisor.pid("haproxy"), fe.workers()
        assert stapled(fe, GOOD) == "no response sent"
        update = ocsp_update(fe)
        assert update.returncode == 0, update.stderr
        assert stapled(fe, GOOD) == "OCSP Response Status: successful (0x0); Cert Status: good"
        assert stapled(fe, REVOKED) == "OCSP Response Status: successful (0x0); Cert Status: revoked"
        assert (fe.supervisor.pid("haproxy"), fe.workers()) == (master, workers)
    finally:
        fe.down()
