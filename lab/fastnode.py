"""One fast-lab node: RGW stand-ins, HAProxy (master-worker, foreground), ExaBGP with `ober-health` as its
API process, each on production's own files.

The node is described by inventory data (the `ober_*` keys an operator writes), validated by the deploy's
own `node_settings`, and its haproxy.cfg, exabgp.conf and health.toml are the deploy's templates rendered
with the node's paths moved into the lab's work directory (ober_deploy.render): the fast tests run what a
node runs. No systemd here (that is the fleet lab's job): every daemon is a supervised child in the node's
namespace, so a test can SIGKILL or SIGSTOP exactly one of them and watch the router.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.netns import ROUTER_IPV4, ROUTER_IPV6, Host
from lab.procs import Supervisor, env_with, wait_for
from lab.router import ROUTER_ASN
from ober_deploy.haproxy import HaproxyFeatures, haproxy_features
from ober_deploy.render import lab_paths, render, template_data
from ober_deploy.settings import Pool, node_settings

NODE_ASN = 65001
VENV = Path(sys.executable).parent.parent  # ober-health and ExaBGP of this checkout's venv
# `ober_vips` of the lab: be_rgw (`ober_backends`, two stand-ins) so that one server can fail without the VIP
# going; 203.0.113.20 brings its own pool of one (be_web), so that its VIP alone can go
DEFAULT_VIPS: tuple[str | Mapping[str, Any], ...] = (
    "203.0.113.10/32",
    {"prefix": "203.0.113.20/32", "backend": "be_web", "backends": "127.0.0.1:8090"},
    "2001:db8:203::10/128",
)
RGW_STAND_INS = "127.0.0.1:[8080-8081]"


def inventory(host: Host, vips: tuple[str | Mapping[str, Any], ...], health: Mapping[str, Any]) -> dict[str, Any]:
    """The node's `ober_*` data, as a site's inventory would say it (plain HTTP, no TLS, addresses for names)."""
    return {
        "ober_local_asn": NODE_ASN,
        "ober_router_id": host.ipv4,
        "ober_local_ipv4": host.ipv4,
        "ober_local_ipv6": host.ipv6,
        "ober_peers": [{"address": ROUTER_IPV4, "asn": ROUTER_ASN}, {"address": ROUTER_IPV6, "asn": ROUTER_ASN}],
        "ober_hold_time": 3,
        "ober_vips": list(vips),
        "ober_backends": RGW_STAND_INS,
        "ober_http": True,
        "ober_check_dns": False,
        "ober_maxconn": 1000,  # a namespace's descriptor limit, not a site's
        "ober_health": dict(health),
    }


@functools.cache
def local_haproxy() -> HaproxyFeatures:
    """What tasks/haproxy.py would read from this machine's HAProxy (`haproxy -v`)."""
    result = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False, timeout=10)
    return haproxy_features(result.stdout)


class FastNode:
    """Files and processes of one node; process names are `<node>-<daemon>` in the supervisor."""

    def __init__(
        self,
        host: Host,
        workdir: Path,
        supervisor: Supervisor,
        vips: tuple[str | Mapping[str, Any], ...] = DEFAULT_VIPS,
        health_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.name = host.name
        self.workdir = workdir
        self.supervisor = supervisor
        self.ober = node_settings(host.name, inventory(host, vips, health_overrides or {}))
        self.paths = lab_paths(workdir, VENV)
        self.vips = self.ober.vips
        # another API process for ExaBGP instead of ober-health (bench/vs_healthcheck.py: ExaBGP's bundled
        # healthcheck, as a stock setup runs it: no neighbor changes or parsed messages on its stdin)
        self.api_command: str | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def state_file(self) -> Path:
        return Path(self.paths.state_file)

    @property
    def maintenance_file(self) -> Path:
        return Path(self.paths.maintenance_file)

    @property
    def health_config(self) -> Path:
        return Path(self.paths.health_config)

    def proc(self, daemon: str) -> str:
        return f"{self.name}-{daemon}"

    def log(self, daemon: str) -> str:
        """What `daemon` wrote so far (ober-health writes to ExaBGP's: it is its child)."""
        return (self.supervisor.logdir / f"{self.proc(daemon)}.log").read_text()

    def wait_master_watched(self, timeout: float = 10.0) -> int:
        """HAProxy's master pid, once ober-health says it watches that very process (its event path is armed).
        `ip netns exec` execs HAProxy, so the supervised pid is the master's."""
        master = self.supervisor.pid(self.proc("haproxy"))
        wait_for(
            lambda: f"watching HAProxy's master (pid {master})" in self.log("exabgp"),
            timeout=timeout,
            what=f"ober-health on {self.name} to watch HAProxy's master {master}",
        )
        return master

    def write_configs(self) -> None:
        """haproxy.cfg (and its whitelist ACL file), exabgp.conf and health.toml from the deploy's templates, as
        tasks/*.py render them."""
        data = template_data(self.ober, self.paths, threads=1, maxconn=self.ober.maxconn, haproxy=local_haproxy())
        for template, path in (
            ("haproxy.cfg.j2", self.paths.haproxy_config),
            ("whitelist.acl.j2", self.paths.frontend_acl),
            ("exabgp.conf.j2", self.paths.exabgp_config),
            ("health.toml.j2", self.paths.health_config),
        ):
            text = render(template, data)
            if template == "exabgp.conf.j2" and self.api_command:
                text = re.sub(r"run [^;]*;", lambda _: f"run {self.api_command};", text, count=1)
                text = re.sub(r"\n\s*neighbor-changes;", "", text)
                text = re.sub(r"\n\s*receive \{[^}]*\}", "", text)
            Path(path).write_text(text)

    def pool(self, backend: str) -> Pool:
        return next(pool for pool in self.ober.pools if pool.name == backend)

    def start_backend(self, backend: str, index: int) -> None:
        server = self.pool(backend).servers[index]
        name = f"{self.name}/{backend}/{index}"
        self.supervisor.start(
            self.proc(f"{backend}-{index}"),
            [sys.executable, "-m", "lab.backend", "--host", server.host, "--port", str(server.port), "--name", name],
            netns=self.name,
            env=env_with(PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
        )

    def stop_backend(self, backend: str, index: int) -> None:
        self.supervisor.stop(self.proc(f"{backend}-{index}"))

    def start_haproxy(self) -> None:
        self.supervisor.start(
            self.proc("haproxy"), ["haproxy", "-W", "-db", "-f", self.paths.haproxy_config], netns=self.name
        )

    def start_exabgp(self) -> None:
        env = env_with(
            **{
                "exabgp.daemon.user": "root",
                "exabgp.daemon.daemonize": "false",
                "exabgp.api.cli": "false",
                "exabgp.api.ack": "true",
                "exabgp.log.destination": "stdout",
                "exabgp.log.statistics": "false",
            }
        )
        exabgp = str(VENV / "bin" / "exabgp")
        self.supervisor.start(self.proc("exabgp"), [exabgp, self.paths.exabgp_config], netns=self.name, env=env)

    def start(self) -> None:
        self.write_configs()
        for pool in self.ober.pools:
            for index in range(len(pool.servers)):
                self.start_backend(pool.name, index)
        self.start_haproxy()
        self.start_exabgp()
