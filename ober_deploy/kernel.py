"""Kernel settings for an ingress node: what HAProxy with tens of thousands of connections and VIPs on a
dummy interface need. Each with the reason, because a sysctl file nobody can explain gets deleted."""

from __future__ import annotations

SYSCTLS: tuple[tuple[str, str, str], ...] = (
    ("net.core.somaxconn", "65535", "accept backlog for bursts of new TLS connections"),
    ("net.ipv4.tcp_max_syn_backlog", "65535", "half-open connections under a SYN burst"),
    ("net.core.netdev_max_backlog", "250000", "packets queued per CPU before the stack drops them"),
    ("net.core.rmem_max", "67108864", "let TCP autotuning grow receive buffers (multi-GB uploads)"),
    ("net.core.wmem_max", "67108864", "same for send buffers (large downloads)"),
    ("net.ipv4.tcp_rmem", "4096 131072 67108864", "TCP receive buffer min/default/max"),
    ("net.ipv4.tcp_wmem", "4096 65536 67108864", "TCP send buffer min/default/max"),
    ("net.ipv4.ip_local_port_range", "1024 65000", "source ports towards the RGW backends"),
    ("net.ipv4.tcp_tw_reuse", "1", "reuse TIME_WAIT ports for new backend connections"),
    ("net.ipv4.tcp_fin_timeout", "15", "free ports of closed connections sooner"),
    ("net.ipv4.tcp_slow_start_after_idle", "0", "keep-alive connections keep their window"),
    ("net.ipv4.ip_nonlocal_bind", "1", "HAProxy can bind a VIP before the dummy interface has it"),
    ("net.ipv6.ip_nonlocal_bind", "1", "same for IPv6 VIPs"),
    ("net.ipv4.conf.all.arp_ignore", "1", "answer ARP only for addresses on the asking interface: not the VIPs"),
    ("net.ipv4.conf.all.arp_announce", "2", "never use a VIP as the ARP source address"),
    ("net.ipv4.conf.all.rp_filter", "2", "loose reverse path: VIP traffic arrives on the uplink, not the dummy"),
    ("net.ipv4.conf.default.rp_filter", "2", "same for interfaces created later"),
    ("fs.file-max", "2097152", "HAProxy needs two descriptors per proxied connection"),
    ("fs.nr_open", "2097152", "lets HAProxy raise its own descriptor limit that far"),
    ("vm.swappiness", "10", "keep HAProxy's buffers in memory"),
)


def sysctl_keys() -> list[str]:
    return [key for key, _, _ in SYSCTLS]


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")
