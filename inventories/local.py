"""One node: this machine (`pyinfra inventories/local.py deploy.py`), or `OBER_TARGET` (`@chroot/...`, an SSH host).

An example single-node site: one router, one VIP, the RGW daemon on the node itself. Copy it and change
the site's values; `ober_deploy/keys.py` holds the defaults of everything not set here.
"""

import os

node = [
    (
        os.environ.get("OBER_TARGET", "@local"),
        {
            "ober_local_asn": 65001,
            "ober_router_id": "198.51.100.11",
            "ober_peers": [{"address": "198.51.100.1", "asn": 65000}],
            "ober_vips": ["203.0.113.10/32"],
            "ober_backends": "127.0.0.1:7480",
            "ober_http": True,
        },
    )
]
