"""The fleet lab: a BGP router, Ceph RGW gateways and N booted systemd nodes, deployed by
`pyinfra inventories/lab.py deploy.py`.

    with Fleet(workdir, prefix="of1", nodes=3) as fleet:      # images (cached), network, router, RGW, boot
        result = fleet.deploy()                              # the operator's command, over SSH
        fleet.wait_routes()                                  # every VIP: one ECMP next hop per node
        fleet.node("of1n1").ssh("systemctl", "kill", "-s", "KILL", "haproxy")

Unlike the fast lab, nothing here starts HAProxy or ExaBGP: the production deploy installs and configures
them and the nodes' own systemd runs them, so the tests exercise the units production runs. The lab only
adds what a real site has and the deploy does not manage: the router, the RGW gateways (lab/rgw.py), the
site's DNS (an /etc/hosts on the nodes, and a private one for the controller and the clients, mounted in
their own mount namespace: the machine's /etc/hosts is never touched) and a CA that signed the VIPs'
certificate (lab/tlsca.py). Nodes boot Debian 12 (`suite="bookworm"`, HAProxy 2.6) or Debian 13
(`suite="trixie"`, HAProxy 3.0).

Topology (documentation ranges only):

    router  <prefix>rtr  br0 198.51.100.1/24, 2001:db8:100::1/64  (BIRD or FRR, AS 65000, ECMP into its FIB)
    control <prefix>ctl  198.51.100.110                            (ssh and pyinfra run from here)
    node i  <prefix>n<i> 198.51.100.(10+i), 2001:db8:100::(10+i)   (systemd-nspawn, AS 65001)
    rgw i   <prefix>g<i> 198.51.100.(60+i), 2001:db8:100::(60+i)   (radosgw, rgw0<i>.lab.example:7480)
    client i <prefix>c<i> 198.51.100.(130+i), 2001:db8:100::(130+i) (client0<i>.lab.example, via the router)

Requests from the router namespace are one client of the site (`request`); the client namespaces are
others, by name in the site's DNS (`request_from`), e.g. for a whitelist written as a Slurm hostlist.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from lab.netns import ROUTER_IPV4, ROUTER_IPV6, Host, LabNetwork, node_ipv4, node_ipv6
from lab.nspawn import NspawnNode, make_lab_key
from lab.procs import Supervisor, netns_exec, run, wait_for
from lab.rgw import DOMAIN, SITE_DOMAIN, RgwSite
from lab.rootfs import DEFAULT_SUITE, ensure_rootfs
from lab.router import ROUTER_ASN, BirdRouter, FrrRouter, Peer, Router, fib_nexthops
from lab.tlsca import LabCa
from lab.wheelhouse import ensure_wheelhouse, index_env

REPO = Path(__file__).resolve().parents[1]
NODE_ASN = 65001
CONTROLLER_INDEX = 100
CLIENT_INDEX = 120  # client i sits at lab index 120+i: 198.51.100.(130+i), 2001:db8:100::(130+i)
CLIENTS = 2
VIPS = ("203.0.113.10/32", "2001:db8:203::10/128")
EXABGP_UNIT = "exabgp.service"
FLEET_ENV = "OBER_LAB_FLEET"  # inventories/lab.py reads the fleet description from this JSON file

# A client that loops through a VIP (from the router namespace), one new connection per request so each
# request follows the router's current ECMP choice: an anonymous `GET /?ober-lab-loop=<VIP>` (RGW's
# ListAllMyBuckets, 200 for an anonymous user; the query names the loop in RGW's access log). Prints one
# JSON summary line at the end (after `duration`, or at once on SIGTERM).
CLIENT = r"""
import http.client, json, signal, sys, time
host, duration, gap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
ok, failed, errors = 0, 0, []
end = time.monotonic() + duration
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))  # stop early, still print the summary
while time.monotonic() < end and not stop:
    try:
        conn = http.client.HTTPConnection(host, 80, timeout=2)
        conn.request("GET", "/?ober-lab-loop=" + host, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status == 200:
            ok += 1
        else:
            failed += 1
            errors.append(f"{time.time():.3f} HTTP {response.status}")
    except Exception as error:
        failed += 1
        errors.append(f"{time.time():.3f} {type(error).__name__}: {error}")
    time.sleep(gap)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:20]}))
"""

# Run a command with the site's DNS: the lab's hosts file bind-mounted over /etc/hosts in a private mount
# namespace of its own (gone with the command), so the machine's /etc/hosts is never touched.
WITH_SITE_DNS = 'mount --bind "$0" /etc/hosts && exec "$@"'


@dataclass
class DeployResult:
    """What `pyinfra -y inventories/lab.py deploy.py` did, per host: operations that changed something."""

    returncode: int
    changed: dict[str, int]
    unchanged: dict[str, int]
    errors: dict[str, int]
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not any(self.errors.values())

    def summary(self) -> str:
        hosts = sorted(set(self.changed) | set(self.unchanged) | set(self.errors))
        parts = [f"{h}: {self.changed.get(h, 0)} changed, {self.errors.get(h, 0)} failed" for h in hosts]
        return f"deploy rc={self.returncode} in {self.seconds:.1f}s; " + "; ".join(parts)


# a request of the lab's client loop in radosgw's access log: `beast: 0x7f..: 2001:db8:100::11 - anonymous
# [25/Nov/2026:19:24:05.702 +0000] "GET /?ober-lab-loop=203.0.113.10 HTTP/1.1" 200 231 - ...` (peer: the node)
_ACCESS = re.compile(r' beast: \S+ (?P<peer>\S+) - \S+ \[[^]]*\] "GET /\?ober-lab-loop=(?P<vip>\S+) HTTP/1\.1"')

_STATUS = re.compile(r"^\s+\[(?P<host>[^\]]+)\] (?P<status>Success|No changes|Error)\b", re.MULTILINE)


def parse_pyinfra_output(text: str) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Count per host the operations pyinfra reported as changed (`Success`), unchanged and failed."""
    changed: dict[str, int] = {}
    unchanged: dict[str, int] = {}
    errors: dict[str, int] = {}
    buckets = {"Success": changed, "No changes": unchanged, "Error": errors}
    for match in _STATUS.finditer(text):
        bucket = buckets[match["status"]]
        bucket[match["host"]] = bucket.get(match["host"], 0) + 1
    return changed, unchanged, errors


@dataclass
class ClientResult:
    ok: int
    failed: int
    errors: list[str] = field(default_factory=list)


class Fleet:
    """Context manager owning the whole fleet lab; `down()` leaves no namespace, process, cgroup or copy."""

    def __init__(
        self,
        workdir: Path,
        prefix: str = "ofl",
        nodes: int = 3,
        router: str = "bird",
        bfd: bool = False,
        log: bool = True,
        checkout: Path | None = None,
        suite: str = DEFAULT_SUITE,
        gateways: int = 2,
        rgw: tuple[str, ...] = ("reef",),
    ) -> None:
        if router not in ("bird", "frr"):
            raise ValueError(f"router: {router!r} is not one of 'bird', 'frr'")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(workdir)
        self.network = LabNetwork(prefix)
        self.prefix = prefix
        self.node_count = nodes
        self.router_kind = router
        self.bfd = bfd
        self.log = log
        self.checkout = checkout or REPO  # the clone the operator's commands run from
        self.controller = f"{prefix}ctl"
        self.nodes: dict[str, NspawnNode] = {}
        self.router: Router | None = None
        self.timings: dict[str, float] = {}
        self.spec_path = workdir / "fleet.json"
        self.key = workdir / "lab_key"
        self.deploys: list[DeployResult] = []
        self.leftovers: dict[str, list[str]] = {}
        self.suite = suite
        self.rgw_flavors = rgw  # radosgw builds this lab may run (lab/rgw.py); the first one starts
        self.rgw = RgwSite(self.network, workdir, self.supervisor, count=gateways)
        self.ca = LabCa(workdir)
        self.hosts_file = workdir / "hosts"
        self.clients: dict[str, Host] = {}  # name in the site's DNS -> its namespace
        self._going_down = threading.Event()
        self._reboots = threading.Thread(target=self._boot_rebooted_nodes, name="reboots", daemon=True)

    # ---- lifecycle
    def up(self) -> Fleet:
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        # images are built once per machine (cached), side by side
        with self._phase("images"), ThreadPoolExecutor(max_workers=1 + len(self.rgw_flavors)) as pool:
            builds = [pool.submit(ensure_rootfs, suite=self.suite)]
            builds += [pool.submit(self.rgw.ensure_image, flavor) for flavor in self.rgw_flavors]
            for build in builds:
                build.result()
        with self._phase("network"):
            self.network.create_router()
            self.network.add_host(self.controller, CONTROLLER_INDEX)
            hosts = [self.network.add_host(f"{self.prefix}n{i}", i) for i in range(1, self.node_count + 1)]
            self.rgw.create_hosts()
            self._create_clients()
            make_lab_key(self.workdir)
            self.hosts_file.write_text(self.site_hosts())
        with self._phase("router"):
            peers = [Peer(h.name, h.ipv4, h.ipv6, NODE_ASN, bfd=self.bfd) for h in hosts]
            router_class = BirdRouter if self.router_kind == "bird" else FrrRouter
            self.router = router_class(self.network.router, self.workdir, self.supervisor, peers, asn=ROUTER_ASN)
            self.router.start()
        with self._phase("rgw"):
            self.rgw.start(self.rgw_flavors[0])
        with self._phase("copy"):
            for host in hosts:
                self.nodes[host.name] = NspawnNode(
                    host,
                    self.workdir / host.name,
                    self.supervisor,
                    self.controller,
                    self.key,
                    suite=self.suite,
                    hosts=self.site_dns(),
                )
            with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                list(pool.map(lambda n: n.prepare(), self.nodes.values()))
        with self._phase("boot"):
            for node in self.nodes.values():
                node.boot()
            for node in self.nodes.values():
                node.wait_running()
        self._reboots.start()
        self.write_spec()

    def _create_clients(self) -> None:
        """Client hosts of the site on the bridge, routed to the VIPs through the router (which forwards)."""
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            run("ip", "netns", "exec", self.router_ns, "sysctl", "-qw", key)
        for i in range(1, CLIENTS + 1):
            host = self.network.add_host(f"{self.prefix}c{i}", CLIENT_INDEX + i)
            run("ip", "-n", host.name, "route", "add", "default", "via", ROUTER_IPV4)
            run("ip", "-n", host.name, "-6", "route", "add", "default", "via", ROUTER_IPV6)
            self.clients[f"client{i:02d}.{SITE_DOMAIN}"] = host

    def _boot_rebooted_nodes(self) -> None:
        """A node that reboots (`systemctl reboot` in it) ends its systemd-nspawn with 133: start it again,
        as a machine comes back after a reboot. Without this a reboot would be a poweroff."""
        while not self._going_down.wait(0.1):
            for node in list(self.nodes.values()):
                if node.rebooted() and not self._going_down.is_set():
                    self._say(f"{node.name} rebooted: booting it again")
                    node.remove_cgroups()
                    node.boot()

    def down(self) -> None:
        started = time.monotonic()
        self._going_down.set()
        if self._reboots.is_alive():
            self._reboots.join(timeout=5)
        # all nodes shut down at once (SIGTERM → orderly poweroff inside), then everything else
        for node in self.nodes.values():
            proc = self.supervisor.procs.get(node.proc_name)
            if proc is not None and proc.poll() is None:
                if node.powered_cut:
                    node.power_restore()
                proc.terminate()
        for node in self.nodes.values():
            node.poweroff(timeout=20)
        self.rgw.stop()
        self.supervisor.stop_all()
        self.leftovers = self.network.kill_leftovers()
        if self.router is not None:
            self.router.cleanup()
        self.network.delete()
        for node in self.nodes.values():
            node.remove_cgroups()
            node.remove()
        self.rgw.down()
        self.timings["down"] = time.monotonic() - started
        self._say(f"down in {self.timings['down']:.1f}s")

    def __enter__(self) -> Fleet:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.down()

    # ---- the inventory's view of the fleet
    def write_spec(self) -> Path:
        """The JSON file inventories/lab.py reads (via $OBER_LAB_FLEET): nodes, key, VIPs, BFD, RGW, TLS."""
        spec = {
            "key": str(self.key),
            "tls": str(self.tls_bundle()),
            "bfd": self.bfd,
            "vips": list(VIPS),
            "backends": self.rgw.hostlist,
            "nodes": [{"name": n.name, "ipv4": n.host.ipv4, "ipv6": n.host.ipv6} for n in self.nodes.values()],
            # the site's Prometheus scrapes from the controller's namespace; the router's is refused
            "metrics_allow": [f"{node_ipv4(CONTROLLER_INDEX)}/32", f"{node_ipv6(CONTROLLER_INDEX)}/128"],
        }
        self.spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        return self.spec_path

    def tls_bundle(self) -> Path:
        """The VIPs' certificate, signed by the lab CA, with its key in one PEM (as HAProxy's `crt` loads it).

        subjectAltName: the site's S3 name and every VIP address, so clients verify by name or address."""
        return self.ca.server_bundle(DOMAIN, [vip_address(vip) for vip in VIPS])

    @property
    def ca_certificate(self) -> Path:
        """What clients trust (curl --cacert, AWS_CA_BUNDLE, boto3 verify=)."""
        return self.ca.ensure()

    # ---- the site's DNS
    def site_dns(self) -> list[tuple[str, str]]:
        """(address, name) pairs the site's DNS answers: the RGW gateways, the clients, and the VIPs as the
        S3 name."""
        clients = [(address, name) for name, host in self.clients.items() for address in (host.ipv4, host.ipv6)]
        return [*self.rgw.dns(), *clients, *((vip_address(vip), DOMAIN) for vip in VIPS)]

    def site_hosts(self) -> str:
        """The site's DNS as an /etc/hosts (for the controller and the clients; nodes get it in theirs)."""
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback", "# the lab site's DNS"]
        lines += [f"{address} {name}" for address, name in self.site_dns()]
        return "\n".join(lines) + "\n"

    def with_site_dns(self, *argv: str) -> list[str]:
        """`argv` run with the site's names resolvable (in a private mount namespace; see WITH_SITE_DNS)."""
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            WITH_SITE_DNS,
            str(self.hosts_file),
            *argv,
        ]

    def client_argv(self, *argv: str) -> list[str]:
        """`argv` as a client of the site runs it: from the router namespace, with the site's DNS."""
        return netns_exec(self.router_ns, *self.with_site_dns(*argv))

    def deploy(self, *extra: str, deploy_file: str = "deploy.py", timeout: float = 600.0) -> DeployResult:
        """Run the operator's command `pyinfra -y inventories/lab.py deploy.py [extra]` from the controller,
        in the fleet's checkout (default: this repository), as an operator runs it from their clone.

        The controller namespace has no route out, like an air-gapped site's controller; its package index
        is a local wheelhouse with what an operator's index serves (lab.wheelhouse). Nothing is built for
        the deploy: it builds ober's wheel itself, from the checkout, as it does for an operator.
        """
        pyinfra = Path(sys.executable).parent / "pyinfra"
        argv = [str(pyinfra) if pyinfra.exists() else "pyinfra", "-y", "inventories/lab.py", deploy_file, *extra]
        env = index_env(ensure_wheelhouse(), os.environ)
        env[FLEET_ENV] = str(self.spec_path)
        started = time.monotonic()
        proc = subprocess.run(
            netns_exec(self.controller, *self.with_site_dns(*argv)),  # the deploy checks backend names
            cwd=self.checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        output = proc.stdout + proc.stderr
        (self.workdir / f"deploy-{int(time.time() * 1000)}.log").write_text(output)
        changed, unchanged, errors = parse_pyinfra_output(output)
        result = DeployResult(proc.returncode, changed, unchanged, errors, output, seconds)
        self.deploys.append(result)
        self.timings.setdefault("deploy", seconds)
        self._say(result.summary())
        return result

    # ---- what tests and the demo look at
    def node(self, name: str) -> NspawnNode:
        return self.nodes[name]

    @property
    def router_ns(self) -> str:
        return self.network.router

    def node_ips(self, prefix: str, nodes: list[str] | None = None) -> set[str]:
        """Next hops the router should have for `prefix` when `nodes` (default: all) announce it."""
        v6 = ipaddress.ip_network(prefix).version == 6
        names = nodes if nodes is not None else list(self.nodes)
        return {self.nodes[n].host.ipv6 if v6 else self.nodes[n].host.ipv4 for n in names}

    def nexthops(self, prefix: str) -> set[str]:
        return set(fib_nexthops(self.router_ns, prefix))

    def wait_nexthops(self, prefix: str, expected: set[str], timeout: float = 15.0) -> float:
        return wait_for(
            lambda: self.nexthops(prefix) == expected,
            timeout=timeout,
            what=f"next hops of {prefix} at the router to be {sorted(expected) or 'none'}"
            f" (last seen: {sorted(self.nexthops(prefix))})",
            interval=0.01,
        )

    def wait_routes(self, timeout: float = 30.0) -> float:
        """Seconds until every VIP has exactly one next hop per node in the router's FIB."""
        started = time.monotonic()
        for vip in VIPS:
            self.wait_nexthops(vip, self.node_ips(vip), timeout=max(0.1, timeout - (time.monotonic() - started)))
        return time.monotonic() - started

    def request(self, vip: str, timeout: float = 2.0) -> tuple[bool, str]:
        """One HTTP request from the router namespace through the VIP: (succeeded, body or error). It is
        the client loop's request, so `forwarded_since` counts it too."""
        host = str(ipaddress.ip_network(vip).network_address)
        url = f"http://[{host}]/" if ":" in host else f"http://{host}/"
        url += f"?ober-lab-loop={host}"
        result = run(
            *netns_exec(self.router_ns, "curl", "-sS", "-f", "-g", "--max-time", str(timeout), url),
            check=False,
            timeout=timeout + 5,
        )
        return result.returncode == 0, (result.stdout or result.stderr).strip()

    def request_from(self, client: str, vip: str, timeout: float = 2.0) -> tuple[bool, str]:
        """One HTTP request through `vip` from the client host named `client` (client01.lab.example)."""
        host = str(ipaddress.ip_network(vip).network_address)
        url = f"http://[{host}]/" if ":" in host else f"http://{host}/"
        result = run(
            *netns_exec(self.clients[client].name, "curl", "-sS", "-f", "-g", "--max-time", str(timeout), url),
            check=False,
            timeout=timeout + 5,
        )
        return result.returncode == 0, (result.stdout or result.stderr).strip()

    def start_client(self, vip: str, duration: float, gap: float = 0.02) -> subprocess.Popen[str]:
        """Start a request loop through `vip` from the router namespace; collect it with `client_result`."""
        host = str(ipaddress.ip_network(vip).network_address)
        return subprocess.Popen(
            netns_exec(self.router_ns, sys.executable, "-c", CLIENT, host, str(duration), str(gap)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def stop_client(proc: subprocess.Popen[str]) -> ClientResult:
        """End a request loop now (it finishes the request in flight) and collect its summary."""
        proc.terminate()
        return Fleet.client_result(proc, timeout=10)

    @staticmethod
    def client_result(proc: subprocess.Popen[str], timeout: float = 60.0) -> ClientResult:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"client loop failed ({proc.returncode}): {err.strip()}")
        data = json.loads(out.strip().splitlines()[-1])
        return ClientResult(data["ok"], data["failed"], data["errors"])

    def established(self) -> set[str]:
        assert self.router is not None
        return self.router.established()

    def cut_backends(self, node: NspawnNode, cut: bool) -> float:
        """The node loses (or regains) its RGW gateways, and only this node: a `prohibit` route to each gateway
        address in the node, so HAProxy's checks are refused at once while the other nodes still reach them.
        Returns the node's clock (the host's) just before the routes changed."""
        out = node.ssh("sh", "-c", f"'date +%s.%N; {self.backends_cut_command(cut)}'", check=cut).stdout.split()
        return float(out[0]) if out else time.time()

    def backends_cut_command(self, cut: bool) -> str:
        """The shell command `cut_backends` runs on a node (to combine it with another fault at one moment)."""
        verb, otherwise = ("add", "") if cut else ("del", " 2>/dev/null || true")
        routes = []
        for gateway in self.rgw.gateways:
            routes.append(f"ip route {verb} prohibit {gateway.host.ipv4}/32{otherwise}")
            routes.append(f"ip -6 route {verb} prohibit {gateway.host.ipv6}/128{otherwise}")
        return "; ".join(routes) if not cut else " && ".join(routes)

    # ---- S3 clients of the site: router namespace, the site's DNS, TLS verified against the lab CA
    def s3_endpoint(self, where: str = DOMAIN) -> str:
        """`https://` + the site's S3 name or a VIP (`203.0.113.10/32` or its address; IPv6 in brackets)."""
        host = vip_address(where) if "/" in where else where
        return f"https://[{host}]" if ":" in host else f"https://{host}"

    def s3_env(self) -> dict[str, str]:
        """The environment every S3 client reads: credentials of the lab's RGW user, the CA to verify with."""
        return dict(
            os.environ,
            AWS_ACCESS_KEY_ID=self.rgw.access_key,
            AWS_SECRET_ACCESS_KEY=self.rgw.secret_key,
            AWS_CA_BUNDLE=str(self.ca_certificate),
            AWS_DEFAULT_REGION="us-east-1",
        )

    def client_run(self, *argv: str, timeout: float = 300.0, **env: str) -> subprocess.CompletedProcess[str]:
        """Run `argv` (curl, aws, ...) as a client of the site, with the S3 environment plus `env`."""
        return subprocess.run(
            self.client_argv(*argv),
            env={**self.s3_env(), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def s3_argv(self, command: str, *args: str, endpoint: str) -> list[str]:
        """`python -m lab.s3client COMMAND` (boto3) as a client of the site."""
        client = [sys.executable, "-m", "lab.s3client", command, "--endpoint", endpoint]
        return self.client_argv(*client, "--ca", str(self.ca_certificate), *args)

    def s3(self, command: str, *args: str, endpoint: str, timeout: float = 300.0) -> dict[str, Any]:
        """Run one lab.s3client command and return its JSON result (its stderr when it fails)."""
        return self.s3_result(self.start_s3(command, *args, endpoint=endpoint), timeout)

    def start_s3(self, command: str, *args: str, endpoint: str) -> subprocess.Popen[str]:
        argv = self.s3_argv(command, *args, endpoint=endpoint)
        return subprocess.Popen(
            argv, cwd=REPO, env=self.s3_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @staticmethod
    def s3_result(proc: subprocess.Popen[str], timeout: float = 300.0) -> dict[str, Any]:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"S3 client failed ({proc.returncode}): {err.strip()[-3000:]}")
        return dict(json.loads(out.strip().splitlines()[-1]))

    def rgw_marks(self) -> dict[str, int]:
        """Where each gateway's log ends now; `forwarded_since` counts what RGW received after it."""
        return {g.fqdn: len(self.rgw.log(g).encode()) for g in self.rgw.gateways}

    def forwarded_since(self, marks: dict[str, int], vip: str | None = None) -> dict[str, int]:
        """Requests of the client loop (and `request()`) through `vip` (default: any VIP) that RGW received
        from each node since `marks`, read from RGW's own access log: the peer address of a request is
        the node's HAProxy, and the loop names its VIP in the query (HAProxy's checks are `HEAD /`).
        Counts survive HAProxy reloads, unlike HAProxy's counters. radosgw writes its log from a thread
        of its own: read until two reads 0.3 s apart agree (at most 3 s)."""
        owner = {address: name for name, node in self.nodes.items() for address in (node.host.ipv4, node.host.ipv6)}
        wanted = vip_address(vip) if vip else None

        def count() -> dict[str, int]:
            counts = dict.fromkeys(self.nodes, 0)
            for gateway in self.rgw.gateways:
                text = self.rgw.log(gateway).encode()[marks.get(gateway.fqdn, 0) :].decode(errors="replace")
                for line in text.splitlines():
                    match = _ACCESS.search(line)
                    if match and match["peer"] in owner and (wanted is None or match["vip"] == wanted):
                        counts[owner[match["peer"]]] += 1
            return counts

        counts, deadline = count(), time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = count()
            if again == counts:
                break
            counts = again
        return counts

    # ---- reporting
    def _phase(self, name: str) -> _Phase:
        return _Phase(self, name)

    def _say(self, message: str) -> None:
        if self.log:
            print(f"[fleet {self.prefix}] {message}", file=sys.stderr, flush=True)


class _Phase:
    """Times one phase of bringing the fleet up, so every run prints where its minutes went."""

    def __init__(self, fleet: Fleet, name: str) -> None:
        self.fleet = fleet
        self.name = name
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        seconds = time.monotonic() - self.started
        self.fleet.timings[self.name] = seconds
        if kind is None:
            self.fleet._say(f"{self.name}: {seconds:.1f}s")


def health_process(node: NspawnNode) -> int:
    """PID of ober-health on the node: the API process ExaBGP (the unit's main process) runs."""
    exabgp = node.main_pid(EXABGP_UNIT)
    if not exabgp:
        raise RuntimeError(f"{node.name}: {EXABGP_UNIT} is not running")
    found = [pid for pid, args in node.children(exabgp).items() if "ober-health" in args]
    if len(found) != 1:
        raise RuntimeError(f"{node.name}: expected one ober-health child of ExaBGP, got {node.children(exabgp)}")
    return found[0]


def vip_address(prefix: str) -> str:
    """`203.0.113.10/32` -> `203.0.113.10`."""
    return str(ipaddress.ip_network(prefix).network_address)


def fleet_requirements_missing() -> str:
    """Why the fleet lab cannot run here ('' when it can)."""
    from lab.netns import netns_available
    from lab.nspawn import requirements_missing

    reason = requirements_missing()
    if reason:
        return reason
    if shutil.which("bird") is None:
        return "`bird` not found (apt-get install bird2)"
    ok, why = netns_available()
    return "" if ok else why


__all__ = [
    "NODE_ASN",
    "ROUTER_IPV4",
    "ROUTER_IPV6",
    "VIPS",
    "ClientResult",
    "DeployResult",
    "Fleet",
    "fleet_requirements_missing",
    "health_process",
    "parse_pyinfra_output",
    "vip_address",
]
