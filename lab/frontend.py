"""HAProxy alone with the deploy's own haproxy.cfg: the frontend a node serves, in a namespace, in a second.

    with Frontend(workdir, prefix="hf1", data={"ober_tls_certificates": [bundle]}) as fe:
        fe.client("curl", "-sS", f"http://{fe.vip}/echo-headers")   # from the client side of the router
        fe.log_lines()                                              # what HAProxy logged (syslog lines)
        fe.reload()                                                 # what `systemctl reload haproxy` does

The config is templates/haproxy.cfg.j2 rendered by ober_deploy from inventory data, as tasks/haproxy.py
renders it; only the paths of its own files move into the workdir (certificates, sockets). HAProxy runs as
on a node (master-worker, chroot to /var/lib/haproxy, user haproxy) in the node's namespace; its syslog
goes where Debian's haproxy.service puts it: /dev/log bound to /var/lib/haproxy/dev/log (here a datagram
socket this object reads, in a private mount namespace of HAProxy's own). RGW is lab/backend.py (it also
echoes the headers it got). Clients run in the router namespace: the client address HAProxy sees is the
router's, 198.51.100.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.netns import ROUTER_IPV4, LabNetwork
from lab.procs import Supervisor, env_with, netns_exec, run, wait_for
from ober_deploy.haproxy import haproxy_features
from ober_deploy.render import lab_paths, render, template_data
from ober_deploy.settings import NodeSettings, node_settings
from ober_health.ocsp import companion

REPO = Path(__file__).resolve().parents[1]
VIP = "203.0.113.10"
BACKEND_PORT = 7480
# HAProxy's chroot on a node, its syslog socket inside it (Debian's unit: BindReadOnlyPaths=/dev/log:...)
IN_MOUNT_NAMESPACE = (
    "mount -t tmpfs tmpfs /var/lib/haproxy && mkdir /var/lib/haproxy/dev && touch /var/lib/haproxy/dev/log && "
    'mount --bind "$0" /var/lib/haproxy/dev/log && exec haproxy -W -db -f "$1"'
)


def render_config(settings: NodeSettings, workdir: Path, seen_as: Path, haproxy_version: str) -> str:
    """templates/haproxy.cfg.j2 rendered with the data tasks/haproxy.py passes for a node whose HAProxy says
    `haproxy_version` (`haproxy -v`), its own files (certificates, whitelist ACL, sockets) put in `workdir`,
    which HAProxy sees as `seen_as` (the same directory, or where it is mounted in a chroot)."""
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    for bundle in settings.tls_certificates:
        (certs / bundle.name).write_bytes(bundle.read_bytes())
        if settings.ocsp_stapling:  # as the deploy writes it (ober_deploy/haproxy_inputs.tls_bundles): empty
            companion(certs / bundle.name).touch()
    # the group of ober's socket is `haproxy`: `ober` exists on a node, not here
    paths = lab_paths(seen_as, Path(sys.prefix))
    data = template_data(settings, paths, threads=1, maxconn=1000, haproxy=haproxy_features(haproxy_version))
    (workdir / Path(paths.frontend_acl).name).write_text(render("whitelist.acl.j2", data))  # the whitelist
    return render("haproxy.cfg.j2", data)


def inventory(**overrides: Any) -> dict[str, Any]:
    """One node's inventory data: a VIP, the stand-in RGW on the node, plain HTTP on 80 (TLS if given)."""
    data: dict[str, Any] = {
        "ober_local_asn": 65001,
        "ober_router_id": "198.51.100.11",
        "ober_peers": [{"address": ROUTER_IPV4, "asn": 65000}],
        "ober_vips": [f"{VIP}/32"],
        "ober_backends": f"127.0.0.1:{BACKEND_PORT}",
        "ober_http": True,
    }
    return data | overrides


class Frontend:
    """One node namespace behind the router namespace: HAProxy with the deploy's config and one backend."""

    def __init__(self, workdir: Path, prefix: str, data: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(workdir)
        self.network = LabNetwork(prefix)
        self.node = f"{prefix}n1"
        self.vip = VIP
        self.settings: NodeSettings = node_settings("lab-node", data or inventory())
        self.config = workdir / "haproxy.cfg"
        self.log_socket = workdir / "log.sock"
        self._log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read_log, name="haproxy log", daemon=True)
        self._closed = threading.Event()

    # ---- lifecycle
    def up(self) -> Frontend:
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        self._log.bind(str(self.log_socket))
        os.chmod(self.log_socket, 0o666)  # HAProxy's workers log as user haproxy
        self._log.settimeout(0.2)
        self._reader.start()
        self.config.write_text(self.render())
        self.network.create_router()
        host = self.network.add_host(self.node, 1)
        self.network.add_address(self.node, f"{VIP}/32")
        run("ip", "-n", self.network.router, "route", "add", f"{VIP}/32", "via", host.ipv4)
        self.supervisor.start(
            "backend",
            [sys.executable, "-m", "lab.backend", "--port", str(BACKEND_PORT), "--name", "rgw1"],
            netns=self.node,
            env=env_with(PYTHONPATH=str(REPO)),
        )
        self.start_haproxy()
        wait_for(self.serving, timeout=10, what="HAProxy serving through the VIP")

    def down(self) -> None:
        self.supervisor.stop_all()
        self.network.kill_leftovers()
        self.network.delete()
        self._closed.set()
        if self._reader.is_alive():
            self._reader.join(timeout=2)
        self._log.close()

    def __enter__(self) -> Frontend:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.down()

    # ---- HAProxy
    def render(self) -> str:
        """templates/haproxy.cfg.j2 with the data tasks/haproxy.py passes, the node's own files moved here."""
        version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False).stdout
        return render_config(self.settings, self.workdir, self.workdir, version)

    def start_haproxy(self) -> None:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_MOUNT_NAMESPACE]
        self.supervisor.start("haproxy", [*argv, str(self.log_socket), str(self.config)], netns=self.node)

    def workers(self) -> set[int]:
        """PIDs of HAProxy's workers (children of the master)."""
        master = self.supervisor.pid("haproxy")
        out = run("ps", "-o", "pid=", "--ppid", str(master), check=False).stdout
        return {int(pid) for pid in out.split()}

    def reload(self, timeout: float = 10.0) -> None:
        """A seamless reload, as `systemctl reload haproxy` asks it (SIGUSR2 to the master); returns once a
        new worker serves."""
        before = self.workers()
        self.supervisor.kill("haproxy", signal.SIGUSR2)
        wait_for(lambda: self.workers() - before, timeout=timeout, what="a new HAProxy worker after the reload")
        wait_for(self.serving, timeout=timeout, what="HAProxy serving after the reload")

    def serving(self) -> bool:
        result = self.client("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{VIP}/", timeout=5)
        return result.stdout == "200"

    # ---- clients and the log
    def client(self, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """`argv` from the router namespace (a client of the site)."""
        return subprocess.run(
            netns_exec(self.network.router, *argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def _read_log(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._log.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self._lines.append(data.decode(errors="replace"))

    def log_lines(self, containing: str = "", timeout: float = 3.0) -> list[str]:
        """HAProxy's syslog lines so far (those containing `containing`, waiting up to `timeout` for one)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in list(self._lines) if containing in line]
            if lines or time.monotonic() >= deadline:
                return lines
            time.sleep(0.05)


__all__ = ["VIP", "Frontend", "inventory", "render_config"]
