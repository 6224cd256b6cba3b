"""The lab's network: one router namespace with a bridge, and one namespace per node on that bridge.

Addresses (documentation ranges only; the build machine's uplink is 192.0.2.0/24, never used here):

    router   br0  198.51.100.1/24    2001:db8:100::1/64
    node i   eth0 198.51.100.(10+i)  2001:db8:100::(10+i)      VIPs 203.0.113.0/24, 2001:db8:203::/64
    client   eth0 203.0.113.250/30 behind the router's vcli 203.0.113.249 (optional: `add_client`), so
             that its traffic to a VIP is forwarded, and hashed per packet, by the router

veth pairs are created straight inside the namespaces, so the host namespace is never touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from dataclasses import dataclass, field

from lab.procs import run

ROUTER_IPV4 = "198.51.100.1"
ROUTER_IPV6 = "2001:db8:100::1"
LINK_PREFIXLEN_V4 = 24
LINK_PREFIXLEN_V6 = 64
CLIENT_NET = "203.0.113.248/30"
CLIENT_ROUTER_IPV4 = "203.0.113.249"
CLIENT_IPV4 = "203.0.113.250"


def node_ipv4(index: int) -> str:
    return f"198.51.100.{10 + index}"


def node_ipv6(index: int) -> str:
    return f"2001:db8:100::{10 + index}"


@dataclass
class Host:
    """A namespace attached to the router's bridge."""

    name: str  # namespace name, also the node's name in the lab
    ipv4: str
    ipv6: str


@dataclass
class LabNetwork:
    """Creates and deletes the namespaces; remembers exactly which ones it made."""

    prefix: str
    router: str = ""
    hosts: list[Host] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.prefix) > 8:
            raise ValueError(f"namespace prefix {self.prefix!r} is longer than 8 characters")
        self.router = self.router or f"{self.prefix}rtr"

    def create_router(self) -> None:
        """The router namespace: bridge br0, L4 ECMP hashing so flows spread over next hops."""
        ns = self.router
        self._add_namespace(ns)
        run("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", ns, "addr", "add", f"{ROUTER_IPV4}/{LINK_PREFIXLEN_V4}", "dev", "br0")
        run("ip", "-n", ns, "addr", "add", f"{ROUTER_IPV6}/{LINK_PREFIXLEN_V6}", "dev", "br0", "nodad")
        run("ip", "-n", ns, "link", "set", "br0", "up")
        for key in ("net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"):
            run("ip", "netns", "exec", ns, "sysctl", "-qw", key)

    def add_host(self, name: str, index: int) -> Host:
        """A namespace with eth0 on the router's bridge at the index's addresses."""
        host = Host(name=name, ipv4=node_ipv4(index), ipv6=node_ipv6(index))
        self._add_namespace(name)
        # a link that goes down and up (a cable pull) must keep its IPv6 address, as on a real host
        run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1")
        veth = f"v{name}"[:15]
        run(
            "ip",
            "-n",
            self.router,
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            name,
        )
        run("ip", "-n", self.router, "link", "set", veth, "master", "br0", "up")
        run("ip", "-n", name, "addr", "add", f"{host.ipv4}/{LINK_PREFIXLEN_V4}", "dev", "eth0")
        run("ip", "-n", name, "addr", "add", f"{host.ipv6}/{LINK_PREFIXLEN_V6}", "dev", "eth0", "nodad")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        self.hosts.append(host)
        return host

    def add_client(self) -> str:
        """A client namespace routed through the router (forwarding on), its link 203.0.113.248/30; every
        node gets a route back to it. Flows from here are forwarded, so the router picks a next hop per
        packet, as a site's router does, where a socket in the router namespace would cache its route."""
        name = f"{self.prefix}cli"
        self._add_namespace(name)
        run("ip", "netns", "exec", self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        run("ip", "-n", self.router, "link", "add", "vcli", "type", "veth", "peer", "name", "eth0", "netns", name)
        run("ip", "-n", self.router, "addr", "add", f"{CLIENT_ROUTER_IPV4}/30", "dev", "vcli")
        run("ip", "-n", self.router, "link", "set", "vcli", "up")
        run("ip", "-n", name, "addr", "add", f"{CLIENT_IPV4}/30", "dev", "eth0")
        run("ip", "-n", name, "link", "set", "eth0", "up")
        run("ip", "-n", name, "route", "add", "default", "via", CLIENT_ROUTER_IPV4)
        for host in self.hosts:
            run("ip", "-n", host.name, "route", "add", CLIENT_NET, "via", ROUTER_IPV4)
        return name

    def add_address(self, netns: str, prefix: str, dev: str = "lo") -> None:
        """Put a VIP on a node (the fast lab uses lo; the deploy uses a dummy interface)."""
        network = ipaddress.ip_network(prefix)
        extra = ["nodad"] if network.version == 6 else []
        run("ip", "-n", netns, "addr", "add", prefix, "dev", dev, *extra)

    def set_link(self, netns: str, dev: str, up: bool) -> None:
        run("ip", "-n", netns, "link", "set", dev, "up" if up else "down")

    def leftover_pids(self) -> dict[str, list[str]]:
        """Processes still inside our namespaces (should be none after the supervisor stopped)."""
        left = {}
        for ns in self.created:
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            if pids:
                left[ns] = pids
        return left

    def kill_leftovers(self, timeout: float = 1.0) -> dict[str, list[str]]:
        """SIGKILL whatever still runs in our namespaces (only our processes' descendants can be there).

        Returns what was found, so a caller can report a teardown that needed it.
        """
        left = self.leftover_pids()
        for pids in left.values():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.leftover_pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        return left

    def delete(self) -> None:
        """Delete every namespace this object created (processes must be stopped before)."""
        for ns in reversed(self.created):
            run("ip", "netns", "del", ns, check=False)
        self.created.clear()
        self.hosts.clear()

    def _add_namespace(self, name: str) -> None:
        if len(name) > 15:
            raise ValueError(f"namespace name {name!r} is longer than 15 characters")
        run("ip", "netns", "add", name)
        self.created.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        # no duplicate address detection on the links made from here on (the addresses are ours, like
        # `nodad` below): an IPv6 link-local address otherwise becomes valid, and its local route appears,
        # a second or two after the lab is up, in the middle of a test watching the router's routes
        run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")


def netns_available() -> tuple[bool, str]:
    """Whether this process may create namespaces; the reason when it may not (for pytest skips)."""
    import uuid

    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    probe = f"oprobe{uuid.uuid4().hex[:6]}"
    try:
        result = run("ip", "netns", "add", probe, check=False)
    except FileNotFoundError:
        return False, "`ip` (iproute2) is not installed"
    if result.returncode != 0:
        return False, f"`ip netns add` fails here: {result.stderr.strip()}"
    run("ip", "netns", "del", probe, check=False)
    return True, ""
