"""pyinfra inventory of the lab fleet: 3 booted systemd nodes behind one BGP router, 2 VIPs (one IPv6),
2 Ceph RGW gateways behind them.

    pyinfra inventories/lab.py deploy.py          # exactly the command an operator runs against production

The fleet lab (`lab/fleet.py`) writes the running fleet's description to a JSON file and points
$OBER_LAB_FLEET at it (node names and addresses, SSH key, VIPs, BFD, the RGW hostlist, the TLS bundle).
Without it this file describes the default lab: $OBER_LAB_NODES nodes (3) at 198.51.100.11.., key
$OBER_LAB_KEY. Everything else is what a production inventory says about a site: the routers to peer
with, the VIPs, the RGW backends by name (the lab's names resolve through the /etc/hosts the lab gives
nodes and controller).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_ROUTER_ASN = 65000
_NODE_ASN = 65001
_ROUTER_IPV4 = "198.51.100.1"
_ROUTER_IPV6 = "2001:db8:100::1"
_DEFAULT_VIPS = ["203.0.113.10/32", "2001:db8:203::10/128"]
_DEFAULT_BACKENDS = "rgw[01-02].lab.example:7480"  # lab/rgw.py: radosgw gateways in their own namespaces
_METRICS_PORT = 9101  # each node's metrics address (HAProxy's and ober-health's), for the site's Prometheus
_DEFAULT_METRICS_ALLOW = ["198.51.100.110/32", "2001:db8:100::110/128"]  # the lab's controller


def _fleet() -> dict[str, Any]:
    path = os.environ.get("OBER_LAB_FLEET")
    if path:
        return dict(json.loads(Path(path).read_text()))
    count = int(os.environ.get("OBER_LAB_NODES", "3"))
    return {
        "key": os.environ.get("OBER_LAB_KEY", "/var/tmp/ober-lab/demo/lab_key"),
        "bfd": False,
        "vips": _DEFAULT_VIPS,
        "nodes": [
            {"name": f"ober-n{i}", "ipv4": f"198.51.100.{10 + i}", "ipv6": f"2001:db8:100::{10 + i}"}
            for i in range(1, count + 1)
        ],
    }


_FLEET = _fleet()


def _node(node: dict[str, str]) -> tuple[str, dict[str, Any]]:
    return (
        node["name"],
        {
            # how the controller reaches the node
            "ssh_hostname": node["ipv4"],
            "ssh_user": "root",
            "ssh_key": _FLEET["key"],
            "ssh_strict_host_key_checking": "off",  # lab nodes get fresh host keys at every boot
            "ssh_known_hosts_file": "/dev/null",
            # the node's own BGP identity and addresses
            "ober_router_id": node["ipv4"],
            "ober_local_ipv4": node["ipv4"],
            "ober_local_ipv6": node["ipv6"],
            "ober_metrics_bind": f"{node['ipv4']}:{_METRICS_PORT}",
        },
    )


ingress = (
    [_node(node) for node in _FLEET["nodes"]],
    {
        "ober_local_asn": _NODE_ASN,
        "ober_peers": [
            {"address": _ROUTER_IPV4, "asn": _ROUTER_ASN, "bfd": bool(_FLEET["bfd"])},
            {"address": _ROUTER_IPV6, "asn": _ROUTER_ASN, "bfd": bool(_FLEET["bfd"])},
        ],
        "ober_vips": [{"prefix": prefix, "backend": "be_rgw", "min_up": 1} for prefix in _FLEET["vips"]],
        "ober_backends": _FLEET.get("backends", _DEFAULT_BACKENDS),
        "ober_http": True,  # the lab's clients use plain HTTP on port 80 (and TLS on 443)
        "ober_hardware_watchdog": False,  # systemd-nspawn nodes have no watchdog device: a warning, not a failure
        "ober_tls_certificates": [_FLEET["tls"]] if _FLEET.get("tls") else [],
        "ober_metrics_allow": _FLEET.get("metrics_allow", _DEFAULT_METRICS_ALLOW),
    },
)
