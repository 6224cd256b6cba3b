"""The site router the nodes peer with: BIRD 2 or FRR, ECMP into the router namespace's kernel FIB.

The kernel FIB is the truth a user cares about (it is what forwards packets), so tests read next hops
from `ip route`, not from the BGP daemon. Both routers listen for one IPv4 and one IPv6 session per node
and run short timers (hold 3 s, the protocol minimum) so that a frozen node is noticed in seconds.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.netns import ROUTER_IPV4, ROUTER_IPV6
from lab.procs import Supervisor, run, wait_for

ROUTER_ASN = 65000


@dataclass(frozen=True)
class Peer:
    """A node as the router sees it."""

    name: str
    ipv4: str
    ipv6: str
    asn: int
    bfd: bool = False


class Router(Protocol):
    netns: str

    def start(self) -> None: ...

    def cleanup(self) -> None:
        """Remove what start() made outside the workdir (after the daemons are stopped)."""
        ...

    def established(self) -> set[str]:
        """Addresses of the peers whose BGP session is up."""
        ...


def fib_nexthops(netns: str, prefix: str) -> list[str]:
    """Next hops of `prefix` in the namespace's kernel FIB (empty when there is no route)."""
    family = "-6" if ipaddress.ip_network(prefix).version == 6 else "-4"
    return parse_nexthops(run("ip", "-n", netns, "-j", family, "route", "show", "exact", prefix, check=False).stdout)


def parse_nexthops(out: str) -> list[str]:
    """Next hops in `ip -j route show` output (one gateway, or ECMP `nexthops`), sorted."""
    try:
        routes = json.loads(out or "[]")
    except json.JSONDecodeError:
        return []
    hops: list[str] = []
    for route in routes:
        if "gateway" in route:
            hops.append(route["gateway"])
        hops.extend(hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop)
    return sorted(hops)


BIRD_CONF = """\
# BIRD 2 lab router (netns {netns})
log "{workdir}/bird.log" all;
router id {router_id};
protocol device {{ scan time 10; }}
protocol kernel kernel4 {{ {table}ipv4 {{ import none; export all; }}; merge paths yes; learn no; }}
protocol kernel kernel6 {{ {table}ipv6 {{ import none; export all; }}; merge paths yes; learn no; }}
{bfd}
template bgp nodes {{
  local as {asn};
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 2;
  graceful restart off;
}}
{protocols}
"""

BIRD_BFD = """protocol bfd {
  interface "br0" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; };
}"""


class BirdRouter:
    """BIRD 2 in the router namespace, `bird -f` as a supervised child, queried through `birdc`.

    `kernel_table`: BIRD exports its routes to that kernel table instead of the main one (the resilient
    router, lab.resilient, mirrors them into the main table as resilient nexthop groups)."""

    def __init__(
        self,
        netns: str,
        workdir: Path,
        supervisor: Supervisor,
        peers: list[Peer],
        asn: int = ROUTER_ASN,
        kernel_table: int | None = None,
    ) -> None:
        self.kernel_table = kernel_table
        self.netns = netns
        self.workdir = workdir
        self.supervisor = supervisor
        self.peers = peers
        self.asn = asn
        self.control = workdir / "bird.ctl"

    def config(self) -> str:
        protocols = []
        for peer in self.peers:
            bfd = " bfd on;" if peer.bfd else ""
            protocols.append(
                f"protocol bgp {peer.name}_v4 from nodes {{ local {ROUTER_IPV4}; "
                f"neighbor {peer.ipv4} as {peer.asn};{bfd} ipv4 {{ import all; export none; }}; }}"
            )
            protocols.append(
                f"protocol bgp {peer.name}_v6 from nodes {{ local {ROUTER_IPV6}; "
                f"neighbor {peer.ipv6} as {peer.asn};{bfd} ipv6 {{ import all; export none; }}; }}"
            )
        return BIRD_CONF.format(
            netns=self.netns,
            workdir=self.workdir,
            router_id=ROUTER_IPV4,
            asn=self.asn,
            table=f"kernel table {self.kernel_table}; " if self.kernel_table is not None else "",
            bfd=BIRD_BFD if any(p.bfd for p in self.peers) else "",
            protocols="\n".join(protocols),
        )

    def start(self) -> None:
        conf = self.workdir / "bird.conf"
        conf.write_text(self.config())
        run("bird", "-p", "-c", str(conf))
        self.supervisor.start("bird", ["bird", "-f", "-c", str(conf), "-s", str(self.control)], netns=self.netns)
        wait_for(self.control.exists, timeout=5, what="BIRD control socket")

    def cleanup(self) -> None:
        pass  # everything BIRD writes is in the workdir

    def birdc(self, *args: str) -> str:
        return run("birdc", "-s", str(self.control), *args, check=False).stdout

    @staticmethod
    def protocol(peer_name: str, version: int) -> str:
        """BIRD's name for the session with node `peer_name` of one address family."""
        return f"{peer_name}_v{version}"

    def disable(self, protocol: str, message: str = "") -> None:
        """What a network operator does to a session: `birdc disable` (BIRD sends Cease / Administrative
        Shutdown, with `message` as its Shutdown Communication) and it stays down until `enable`."""
        out = self.birdc("disable", protocol, *([f'"{message}"'] if message else []))
        if f"{protocol}: disabled" not in out:
            raise RuntimeError(f"birdc disable {protocol}: {out.strip()}")

    def enable(self, protocol: str) -> None:
        out = self.birdc("enable", protocol)
        if f"{protocol}: enabled" not in out:
            raise RuntimeError(f"birdc enable {protocol}: {out.strip()}")

    def set_peer_asn(self, peer_name: str, asn: int) -> None:
        """Reconfigure the AS BIRD expects from node `peer_name` (both sessions) and apply it (`birdc
        configure`): a wrong one is refused with Bad Peer AS, as on a misconfigured router."""
        self._reconfigure([dataclasses.replace(p, asn=asn) if p.name == peer_name else p for p in self.peers])

    def set_peer_bfd(self, peer_name: str, bfd: bool) -> None:
        """Turn BFD on or off for node `peer_name`'s sessions at the router and apply it (`birdc configure`):
        one fleet can then show a node dropped by BFD and another by the hold timer alone."""
        self._reconfigure([dataclasses.replace(p, bfd=bfd) if p.name == peer_name else p for p in self.peers])

    def bfd_up(self) -> set[str]:
        """Addresses of the neighbors whose BFD session is Up at the router (`birdc show bfd sessions`)."""
        up = set()
        for line in self.birdc("show", "bfd", "sessions").splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "Up":
                up.add(fields[0])
        return up

    def _reconfigure(self, peers: list[Peer]) -> None:
        self.peers = peers
        conf = self.workdir / "bird.conf"
        conf.write_text(self.config())
        out = self.birdc("configure", f'"{conf}"')
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise RuntimeError(f"birdc configure: {out.strip()}")

    def established(self) -> set[str]:
        up = set()
        for line in self.birdc("show", "protocols").splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "BGP" and fields[5] == "Established":
                peer = self._peer_of(fields[0])
                if peer:
                    up.add(peer)
        return up

    def _peer_of(self, protocol: str) -> str | None:
        for peer in self.peers:
            if protocol == f"{peer.name}_v4":
                return peer.ipv4
            if protocol == f"{peer.name}_v6":
                return peer.ipv6
        return None


FRR_CONF = """\
frr defaults traditional
hostname {netns}
log file {workdir}/frr.log informational
!
bfd
 profile fast
  receive-interval 50
  transmit-interval 50
  detect-multiplier 3
 exit
exit
!
router bgp {asn}
 bgp router-id {router_id}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 timers bgp 1 3
{neighbors}
 address-family ipv4 unicast
  maximum-paths 8
{activate4}
 exit-address-family
 address-family ipv6 unicast
  maximum-paths 8
{activate6}
 exit-address-family
exit
"""


class FrrRouter:
    """FRR 8 (zebra, bgpd, bfdd) in the router namespace, daemons in the foreground as user frr."""

    DAEMONS = ("zebra", "bgpd", "bfdd")

    def __init__(
        self, netns: str, workdir: Path, supervisor: Supervisor, peers: list[Peer], asn: int = ROUTER_ASN
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.supervisor = supervisor
        self.peers = peers
        self.asn = asn
        # FRR drops to user frr, which cannot enter a 0700 workdir (pytest's tmp tree): own dir under /tmp
        self.rundir = Path(tempfile.mkdtemp(prefix=f"ober-frr-{netns}-"))

    def config(self) -> str:
        neighbors, act4, act6 = [], [], []
        for peer in self.peers:
            for address in (peer.ipv4, peer.ipv6):
                neighbors.append(f" neighbor {address} remote-as {peer.asn}")
                neighbors.append(f" neighbor {address} timers 1 3")
                neighbors.append(f" neighbor {address} timers connect 1")
                if peer.bfd:
                    neighbors.append(f" neighbor {address} bfd profile fast")
            act4.append(f"  neighbor {peer.ipv4} activate")
            act6.append(f"  neighbor {peer.ipv6} activate")
        return FRR_CONF.format(
            netns=self.netns,
            workdir=self.rundir,
            asn=self.asn,
            router_id=ROUTER_IPV4,
            neighbors="\n".join(neighbors),
            activate4="\n".join(act4),
            activate6="\n".join(act6),
        )

    def start(self) -> None:
        shutil.chown(self.rundir, "frr", "frr")
        common = ["--vty_socket", str(self.rundir), "-z", f"{self.rundir}/zserv.api", "-P", "0"]
        common += ["-f", "/dev/null"]
        zserv = self.rundir / "zserv.api"
        for daemon in self.DAEMONS:
            self.supervisor.start(
                f"frr-{daemon}",
                [f"/usr/lib/frr/{daemon}", *common, "-i", f"{self.rundir}/{daemon}.pid"],
                netns=self.netns,
            )
            if daemon == "zebra":
                wait_for(zserv.exists, timeout=5, what="FRR zebra socket")
        wait_for(
            lambda: all((self.rundir / f"{d}.vty").exists() for d in self.DAEMONS),
            timeout=5,
            what="FRR vty sockets",
        )
        conf = self.rundir / "frr.conf"
        conf.write_text(self.config())
        run("vtysh", "--vty_socket", str(self.rundir), "-f", str(conf))

    def cleanup(self) -> None:
        log = self.rundir / "frr.log"
        if log.exists():
            shutil.copy(log, self.workdir / "frr.log")
        shutil.rmtree(self.rundir, ignore_errors=True)

    def vtysh(self, *commands: str) -> str:
        argv = ["vtysh", "--vty_socket", str(self.rundir)]
        for command in commands:
            argv += ["-c", command]
        return run(*argv, check=False).stdout

    def established(self) -> set[str]:
        up = set()
        for family in ("ipv4", "ipv6"):
            try:
                summary = json.loads(self.vtysh(f"show bgp {family} unicast summary json") or "{}")
            except json.JSONDecodeError:
                continue
            for address, info in summary.get("peers", {}).items():
                if info.get("state") == "Established":
                    up.add(address)
        return up
