"""One fast-lab node: backends, HAProxy (master-worker, foreground), ExaBGP with `ober-health` as its API process.

No systemd here (that is the fleet lab's job): every daemon is a supervised child in the node's namespace,
so a test can SIGKILL or SIGSTOP exactly one of them and watch the router.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from lab.netns import ROUTER_IPV4, ROUTER_IPV6, Host
from lab.procs import Supervisor, env_with

NODE_ASN = 65001


@dataclass(frozen=True)
class LabVip:
    prefix: str
    backend: str

    @property
    def address(self) -> str:
        return str(ipaddress.ip_network(self.prefix).network_address)

    @property
    def bind(self) -> str:
        address = ipaddress.ip_network(self.prefix).network_address
        return f"[{address}]:80" if address.version == 6 else f"{address}:80"


# be_rgw has two servers so that one can fail without the VIP going; be_web one.
BACKEND_PORTS = {"be_rgw": (8080, 8081), "be_web": (8090,)}
DEFAULT_VIPS = (
    LabVip("203.0.113.10/32", "be_rgw"),
    LabVip("203.0.113.20/32", "be_web"),
    LabVip("2001:db8:203::10/128", "be_rgw"),
)


def haproxy_config(workdir: Path, vips: tuple[LabVip, ...]) -> str:
    lines = [
        "global",
        f"    stats socket {workdir}/haproxy.sock mode 600 level admin expose-fd listeners",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 5s",
        "    timeout server 5s",
        "    timeout http-keep-alive 1s",
    ]
    for index, vip in enumerate(vips):
        lines += [f"frontend fe_vip{index}", f"    bind {vip.bind}", f"    default_backend {vip.backend}"]
    all_empty = " ".join(f"{{ nbsrv({backend}) lt 1 }}" for backend in BACKEND_PORTS)
    lines += [
        "frontend stats",
        "    bind 127.0.0.1:8404",
        "    monitor-uri /health",
        f"    monitor fail if {all_empty}   # 503 only when no backend at all can serve",
        "    stats enable",
        "    stats uri /stats",
    ]
    for backend, ports in BACKEND_PORTS.items():
        lines += [f"backend {backend}", "    option httpchk GET /", "    default-server inter 200ms fall 2 rise 2"]
        lines += [f"    server s{i} 127.0.0.1:{port} check" for i, port in enumerate(ports, 1)]
    return "\n".join(lines) + "\n"


def exabgp_config(host: Host, health_argv: list[str]) -> str:
    process = f"""process ober-health {{
    run {" ".join(health_argv)};
    encoder text;
}}
"""
    neighbors = []
    for peer, local, family in ((ROUTER_IPV4, host.ipv4, "ipv4"), (ROUTER_IPV6, host.ipv6, "ipv6")):
        neighbors.append(f"""neighbor {peer} {{
    router-id {host.ipv4};
    local-address {local};
    local-as {NODE_ASN};
    peer-as 65000;
    hold-time 3;
    adj-rib-out true;
    family {{ {family} unicast; }}
    api {{ processes [ ober-health ]; neighbor-changes; receive {{ parsed; notification; }} }}
}}
""")
    return process + "\n".join(neighbors)


def health_config(workdir: Path, host: Host, vips: tuple[LabVip, ...], overrides: dict[str, float | int]) -> str:
    settings: dict[str, object] = {
        "interval": 0.2,
        "timeout": 0.5,
        "rise": 3,
        "fall": 2,
        "haproxy_url": "http://127.0.0.1:8404/health",
        "stats_socket": f"{workdir}/haproxy.sock",
        "maintenance_file": f"{workdir}/maintenance",
        "drain_file": f"{workdir}/drain",
        "state_file": f"{workdir}/state.json",
    }
    settings.update(overrides)
    lines = ["[health]"]
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in settings.items()]
    # the sessions exabgp_config() opens, as the deploy renders them
    lines += ["", "[bgp]", f"local_asn = {NODE_ASN}", f'router_id = "{host.ipv4}"', "hold_time = 3"]
    for peer, local in ((ROUTER_IPV4, host.ipv4), (ROUTER_IPV6, host.ipv6)):
        lines += ["", "[[peer]]", f'address = "{peer}"', "asn = 65000", f'local_address = "{local}"']
    for vip in vips:
        lines += ["", "[[vip]]", f'prefix = "{vip.prefix}"', f'backend = "{vip.backend}"']
    return "\n".join(lines) + "\n"


class FastNode:
    """Files and processes of one node; process names are `<node>-<daemon>` in the supervisor."""

    def __init__(
        self,
        host: Host,
        workdir: Path,
        supervisor: Supervisor,
        vips: tuple[LabVip, ...],
        health_overrides: dict[str, float | int] | None = None,
    ) -> None:
        self.host = host
        self.name = host.name
        self.workdir = workdir
        self.supervisor = supervisor
        self.vips = vips
        self.health_overrides = health_overrides or {}
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    @property
    def maintenance_file(self) -> Path:
        return self.workdir / "maintenance"

    def proc(self, daemon: str) -> str:
        return f"{self.name}-{daemon}"

    def write_configs(self) -> None:
        (self.workdir / "haproxy.cfg").write_text(haproxy_config(self.workdir, self.vips))
        (self.workdir / "health.toml").write_text(
            health_config(self.workdir, self.host, self.vips, self.health_overrides)
        )
        health = [str(Path(sys.executable).with_name("ober-health")), "--config", str(self.workdir / "health.toml")]
        (self.workdir / "exabgp.conf").write_text(exabgp_config(self.host, health))

    def start_backend(self, backend: str, index: int) -> None:
        port = BACKEND_PORTS[backend][index]
        self.supervisor.start(
            self.proc(f"{backend}-{index}"),
            [sys.executable, "-m", "lab.backend", "--port", str(port), "--name", f"{self.name}/{backend}/{index}"],
            netns=self.name,
            env=env_with(PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
        )

    def stop_backend(self, backend: str, index: int) -> None:
        self.supervisor.stop(self.proc(f"{backend}-{index}"))

    def start_haproxy(self) -> None:
        self.supervisor.start(
            self.proc("haproxy"), ["haproxy", "-W", "-db", "-f", str(self.workdir / "haproxy.cfg")], netns=self.name
        )

    def start_exabgp(self) -> None:
        env = env_with(
            **{
                "exabgp.daemon.user": "root",
                "exabgp.daemon.daemonize": "false",
                "exabgp.api.cli": "false",
                "exabgp.log.destination": "stdout",
                "exabgp.log.statistics": "false",
            }
        )
        exabgp = str(Path(sys.executable).with_name("exabgp"))
        self.supervisor.start(
            self.proc("exabgp"), [exabgp, str(self.workdir / "exabgp.conf")], netns=self.name, env=env
        )

    def start(self) -> None:
        self.write_configs()
        for backend, ports in BACKEND_PORTS.items():
            for index in range(len(ports)):
                self.start_backend(backend, index)
        self.start_haproxy()
        self.start_exabgp()
