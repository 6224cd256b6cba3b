"""Example production fleet: `pyinfra inventories/prod.py deploy.py`.

Four ingress nodes in two racks, each peering with its rack's two top-of-rack routers over IPv4 and
IPv6, announcing three VIPs (one IPv6) for S3 on a Ceph RGW cluster of eight daemons. Every `ober_` key
is validated on the controller before any host is touched; defaults are in ober_deploy/keys.py.

    pyinfra inventories/prod.py deploy.py --dry     # what would change
    pyinfra inventories/prod.py deploy.py           # change it (HAProxy reloads, ExaBGP restarts one node at a time)
    pyinfra inventories/prod.py tasks/uninstall.py  # remove ober again
"""

# group data: what every ingress node of the site shares
_SITE = {
    "ober_local_asn": 65101,  # the ingress nodes' ASN (private, 1..4294967295)
    "ober_vips": [
        {"prefix": "203.0.113.10/32", "min_up": 2, "med": 100, "communities": ["65101:100"]},  # s3.example.org
        {"prefix": "203.0.113.11/32", "min_up": 2},  # s3-internal.example.org
        {"prefix": "2001:db8:203::10/128", "min_up": 2},  # s3.example.org (AAAA)
    ],
    # Slurm hostlist syntax, expanded with python-hostlist; names are resolved on the controller
    "ober_backends": "rgw[01-08].storage.example.org:7480",
    "ober_backend_check_path": "/swift/healthcheck",
    "ober_tls_certificates": ["certs/s3.example.org.pem"],  # certificate + chain + key, on the controller
    "ober_whitelist_frontend": ["198.51.100.0/24", "2001:db8::/32"],  # the site's client networks
    "ober_whitelist_routers": ["203.0.113.128/25", "2001:db8:ffff::/48"],  # the ToR routers' addresses
    "ober_whitelist_backend": ["203.0.113.64/26"],  # where the RGW daemons live
    "ober_health": {"interval": 0.2, "rise": 3, "fall": 2},
}


def _node(name: str, address: str, address6: str, rack: int) -> tuple[str, dict[str, object]]:
    routers = [f"203.0.113.{128 + 2 * rack}", f"203.0.113.{129 + 2 * rack}"]
    routers6 = [f"2001:db8:ffff:{rack}::1", f"2001:db8:ffff:{rack}::2"]
    return (
        name,
        {
            "ssh_hostname": address,
            "ober_router_id": address,
            "ober_local_ipv4": address,
            "ober_local_ipv6": address6,
            "ober_peers": [{"address": r, "asn": 65000, "bfd": True} for r in routers]
            + [{"address": r, "asn": 65000, "bfd": True} for r in routers6],
        },
    )


ingress = (
    [
        _node("ingress01", "203.0.113.1", "2001:db8:1::1", rack=1),
        _node("ingress02", "203.0.113.2", "2001:db8:1::2", rack=1),
        _node("ingress03", "203.0.113.3", "2001:db8:2::3", rack=2),
        _node("ingress04", "203.0.113.4", "2001:db8:2::4", rack=2),
    ],
    _SITE,
)
