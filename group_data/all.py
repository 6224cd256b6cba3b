"""Defaults for every ober node; an inventory (host or group data) or `--data key=value` overrides them.

Keys without a default here (`ober_local_asn`, `ober_peers`, `ober_vips`, `ober_backends`) describe a
site and must come from the inventory: see inventories/prod.py for a documented example. What the node
itself defaults, ranges included, is defined once in ober_health/config.py and not repeated here:
`ober_hold_time` (9 s) and the keys of `ober_health` (interval 0.2 s, timeout 0.5 s, rise 3, fall 2).
"""

ober_kernel_tuning = True  # sysctl.d tuning (keys not writable in a container are skipped with a notice)
ober_http = False  # also serve plain HTTP on port 80 of each VIP
ober_tls_certificates = []  # PEM bundles (certificate + chain + key) on the controller
ober_whitelist_frontend = []  # clients allowed on the VIPs (empty: everyone)
ober_whitelist_routers = []  # every BGP peer must be inside (empty: no check)
ober_whitelist_backend = []  # every RGW address must be inside (empty: no check)
ober_backend_check_path = "/"  # RGW health check: HEAD this path, expect 200 (anonymous: RGW answers 200)
ober_check_dns = True  # resolve backend names on the controller before deploying
ober_maxconn = 100000  # HAProxy's global connection limit
# Strict-Transport-Security max-age (s) on TLS responses; 0: no header. Off by default: browsers enforce it
# for max-age on the S3 name and it cannot be taken back sooner; S3 SDKs ignore it. 63072000 (2 years) is
# Mozilla's value for a site that serves its S3 name over HTTPS only (ober_http off).
ober_hsts_max_age = 0
