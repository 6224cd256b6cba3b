"""The templates, rendered as the deploy renders them (ober_deploy.render: the data tasks/*.py pass), checked
by the daemons' own checkers.

Each inventory is rendered twice: with the node's paths (what the node gets, read by the assertions) and
with the paths moved into tmp_path (`NodePaths.moved_into`: certificates, ACL file, sockets, the venv of
this checkout, and the `haproxy` group instead of `ober`, which exists on a node but not here) so that
`haproxy -c`, `exabgp validate`, `ober-health --check`, `sh -n`, `systemd-analyze verify` and FRR's
`bfdd -C` can read them here. Expectations come from the inventory data, not from NodeSettings, so the
template logic is not re-derived from itself.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hostlist
import pytest

from ober_deploy.haproxy import HaproxyFeatures, haproxy_features, parse_version
from ober_deploy.kernel import SYSCTLS
from ober_deploy.platform import platform_from_facts
from ober_deploy.render import DRAIN_TIMEOUT, lab_paths, render, template_data
from ober_deploy.settings import Backend, NodeSettings, Peer, Pool, node_settings
from ober_health.config import load_config, parse_config
from ober_health.paths import PATHS, NodePaths
from tests.deploy.conftest import Bundles
from tests.deploy.support import (
    DNS,
    EXABGP,
    HOST,
    NODE_V6,
    OBER_HEALTH,
    ROUTER_V4,
    ROUTER_V6,
    VENV_BIN,
    VIP_V4,
    VIP_V6,
    prod_hosts,
    resolver,
    run,
    site_data,
)

BFDD = Path("/usr/lib/frr/bfdd")  # FRR, for its own reading of bfdd.conf
DEBIAN = platform_from_facts({"name": "Debian", "major": 12, "release_meta": {"ID": "debian"}})
# the HAProxy `haproxy -c` runs here (Debian 12's 2.6): what tasks/haproxy.py reads from the node
HAPROXY_HERE = haproxy_features(subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False).stdout)
# the facts tasks/haproxy.py reads from a node (nproc, HAProxy's version), and the data of the templates
# whose task passes more than the node's settings (bfd, kernel)
FACTS: dict[str, Any] = {
    "threads": 4,
    "haproxy": HAPROXY_HERE,
    "bfdd": DEBIAN.bfd_daemon,
    "config": PATHS.bfd_config,
    "settings": [(key, value, why, True) for key, value, why in SYSCTLS],
    "runtime_watchdog": "30s",
}
TEMPLATES = (
    "haproxy.cfg.j2",
    "haproxy-ober.conf.j2",
    "tmpfiles-haproxy.conf.j2",
    "exabgp.conf.j2",
    "exabgp.service.j2",
    "health.toml.j2",
    "ober-vips.sh.j2",
    "haproxy-reload.sh.j2",
    "ober-uninstall.sh.j2",
    "ober-vips.service.j2",
    "whitelist.acl.j2",
    "bfdd.conf.j2",
    "ober-bfdd.service.j2",
    "sysctl.conf.j2",
    "watchdog.conf.j2",
    "exabgp.env.j2",
    "ober-ocsp.service.j2",
    "ober-ocsp.timer.j2",
)


def render_for(template: str, ober: NodeSettings, paths: NodePaths, **changes: Any) -> str:
    data = template_data(ober, paths, **FACTS, maxconn=ober.maxconn)
    return render(template, data | changes)


@dataclass
class Rendered:
    """One node's files as the node gets them (`live`), and the same rendered for the checkers (`tmp`)."""

    ober: NodeSettings
    data: dict[str, Any]
    live: dict[str, str]
    tmp: Path
    paths: NodePaths


def render_node(ober: NodeSettings, data: dict[str, Any], tmp: Path) -> Rendered:
    paths = lab_paths(tmp, VENV_BIN.parent)
    (tmp / "certs").mkdir()
    for bundle in ober.tls_certificates:  # tasks/tls.py: the bundles under their own names
        shutil.copy(bundle, tmp / "certs" / bundle.name)
    files = {
        "haproxy.cfg.j2": Path(paths.haproxy_config),
        "whitelist.acl.j2": Path(paths.frontend_acl),
        "exabgp.conf.j2": Path(paths.exabgp_config),
        "health.toml.j2": Path(paths.health_config),
        "ober-vips.sh.j2": Path(paths.vips_script),
        "bfdd.conf.j2": Path(paths.bfd_config),
        "exabgp.service.j2": tmp / "exabgp.service",
        "ober-vips.service.j2": tmp / "ober-vips.service",
        "ober-bfdd.service.j2": tmp / "ober-bfdd.service",
        "ober-ocsp.service.j2": tmp / "ober-ocsp.service",
        "ober-ocsp.timer.j2": tmp / "ober-ocsp.timer",
    }
    for template, path in files.items():
        path.write_text(render_for(template, ober, paths))
    live = {template: render_for(template, ober, PATHS) for template in TEMPLATES}
    return Rendered(ober, data, live, tmp, paths)


# rendered by the controller as an operation's command, not a node file: checked in tests/deploy/test_rolling.py
COMMAND_TEMPLATES = ("rolling-restart.sh.j2",)


def test_every_template_is_rendered_here() -> None:
    """A template added to templates/ is rendered (and checked) by these tests too."""
    templates = sorted(p.name for p in (Path(__file__).parents[2] / "templates").glob("*.j2"))
    assert templates == sorted(TEMPLATES + COMMAND_TEMPLATES)


# ---- the inventories


def dual_stack(**overrides: Any) -> dict[str, Any]:
    data = {
        "ober_local_ipv6": NODE_V6,
        "ober_peers": [{"address": ROUTER_V4, "asn": 65000}, {"address": ROUTER_V6, "asn": 65010}],
        "ober_vips": [
            {"prefix": VIP_V4, "min_up": 2, "med": 100, "communities": ["65001:100", "65001:200"]},
            {"prefix": VIP_V6, "min_up": 1},
        ],
    }
    return site_data(**(data | overrides))


def inventories(bundles: Bundles) -> dict[str, dict[str, Any]]:
    tls = {"ober_tls_certificates": [str(bundles.good)]}
    return {
        "ipv4-http-only": site_data(),
        "ipv4-tls-only": site_data(ober_http=False, **tls),
        "dual-stack-tls-and-http": dual_stack(**tls),
        "twenty-vips": site_data(
            ober_vips=[
                {"prefix": f"203.0.113.{i}/32", "min_up": 1 + i % 3, "med": 10 * i, "communities": [f"65001:{i}"]}
                for i in range(1, 21)
            ],
            ober_backends="rgw[01-02].internal:7480,192.0.2.30:8080",
            ober_http=False,
            **tls,
        ),
        "frontend-whitelist": dual_stack(ober_whitelist_frontend=["198.51.100.0/24", "2001:db8::/32"], **tls),
        "bfd-peers": dual_stack(
            ober_peers=[
                {"address": ROUTER_V4, "asn": 65000, "bfd": True},
                {"address": "198.51.100.2", "asn": 65000},
                {"address": ROUTER_V6, "asn": 65000, "bfd": True},
            ],
            ober_health={"interval": 0.5, "timeout": 1.0, "rise": 2, "fall": 3},
        ),
        "prod-ingress01": prod_hosts(bundles.good)[0][1],
        "per-vip-backends": dual_stack(
            ober_vips=[
                VIP_V4,
                {"prefix": "203.0.113.20/32", "backend": "be_swift", "backends": "rgw[01-02].internal:8080"},
                {"prefix": VIP_V6, "backend": "be_swift", "min_up": 2},
            ]
        ),
        "metrics-off-the-node": dual_stack(
            ober_metrics_bind="[::]:9101", ober_metrics_allow=["198.51.100.0/24", "2001:db8:100::/64"], **tls
        ),
    }


@pytest.fixture(
    params=[
        "ipv4-http-only",
        "ipv4-tls-only",
        "dual-stack-tls-and-http",
        "twenty-vips",
        "frontend-whitelist",
        "bfd-peers",
        "prod-ingress01",
        "per-vip-backends",
        "metrics-off-the-node",
    ]
)
def node(request: pytest.FixtureRequest, bundles: Bundles, tmp_path: Path) -> Rendered:
    data = inventories(bundles)[request.param]
    name = "ingress01" if request.param.startswith("prod") else HOST
    return render_node(node_settings(name, data, resolver=resolver), data, tmp_path)


def vip_prefixes(data: dict[str, Any]) -> list[str]:
    return [v if isinstance(v, str) else v["prefix"] for v in data["ober_vips"]]


def bind_host(prefix: str) -> str:
    address = prefix.split("/", maxsplit=1)[0]
    return f"[{address}]" if ":" in address else address


def section(config: str, header: str) -> list[str]:
    """The lines of one HAProxy section (after its header, up to the next unindented line), comments dropped."""
    lines = config.splitlines()
    start = lines.index(header)
    body = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        if line.strip() and not line.strip().startswith("#"):
            body.append(line.strip())
    return body


# ---- HAProxy


def haproxy_check(config: Path) -> subprocess.CompletedProcess[str]:
    """`haproxy -c -f config`. HAProxy resolves server names when it loads a config (init-addr libc), so it
    runs in its own mount namespace with an /etc/hosts holding the injected DNS (the names of the example
    sites do not resolve here): the same DNS the validation was given, nothing else changed."""
    hosts = config.parent / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{a[0]} {name}\n" for name, a in DNS.items()))
    script = 'mount --bind "$1" /etc/hosts && exec haproxy -c -f "$2"'
    return run(["unshare", "--mount", "sh", "-c", script, "sh", str(hosts), str(config)])


def test_haproxy_accepts_the_config(node: Rendered) -> None:
    result = haproxy_check(node.tmp / "haproxy.cfg")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr


def test_haproxy_binds_each_vip_on_443_with_tls_and_on_80_only_with_http(node: Rendered) -> None:
    tls = bool(node.data.get("ober_tls_certificates"))
    http = node.data.get("ober_http", False)
    expected = []
    for prefix in vip_prefixes(node.data):
        if tls:
            expected.append(f"bind {bind_host(prefix)}:443 ssl crt /etc/haproxy/certs/ alpn h2,http/1.1")
        if http:
            expected.append(f"bind {bind_host(prefix)}:80")
    binds = [line for line in section(node.live["haproxy.cfg.j2"], "frontend s3") if line.startswith("bind ")]
    assert binds == expected
    assert (":80" in "".join(binds)) == http
    assert ("ssl" in "".join(binds)) == tls


def test_haproxy_rejects_clients_outside_the_acl_file_listing_everyone_without_a_whitelist(node: Rendered) -> None:
    """The rule is there with and without a whitelist, so a whitelist sync (tasks/whitelists.py) changes the
    ACL file alone and never needs a new haproxy.cfg; without a whitelist the file admits every address."""
    networks = node.data.get("ober_whitelist_frontend", [])
    frontend = section(node.live["haproxy.cfg.j2"], "frontend s3")
    assert "tcp-request connection reject if !{ src -f /etc/haproxy/ober-frontend.acl }" in frontend
    acl = [line for line in node.live["whitelist.acl.j2"].splitlines() if line and not line.startswith("#")]
    assert acl == (networks or ["0.0.0.0/0", "::/0"])


def test_haproxy_metrics_frontend_only_with_a_metrics_bind(node: Rendered) -> None:
    config = node.live["haproxy.cfg.j2"]
    bind = node.data.get("ober_metrics_bind")
    assert ("frontend metrics" in config) == bool(bind) == ("backend ober_health_metrics" in config)
    stats = section(config, "frontend stats")
    exporter = "http-request use-service prometheus-exporter if { path /metrics }"
    assert "bind 127.0.0.1:8404" in stats and exporter in stats  # loopback, as before, with or without the keys
    if not bind:
        return
    allowed = node.data["ober_metrics_allow"]
    assert section(config, "frontend metrics") == [
        f"bind {bind}",
        *(f"acl metrics_client src {network}" for network in allowed),
        "http-request deny if !metrics_client",
        "http-request deny unless { path /metrics /metrics/health }",
        "http-request use-service prometheus-exporter if { path /metrics }",
        "default_backend ober_health_metrics",
    ]
    assert section(config, "backend ober_health_metrics") == [
        "http-request set-path /metrics",
        "server ober-health 127.0.0.1:8405",  # health.toml's default status_listen
    ]
    health = load_config(node.tmp / "health.toml")
    assert health.health.status_listen == "127.0.0.1:8405"


def test_haproxy_balances_over_every_backend_with_the_health_check(node: Rendered) -> None:
    backend = section(node.live["haproxy.cfg.j2"], "backend be_rgw")
    servers = [line.split()[2] for line in backend if line.startswith("server ")]
    expected = []
    for spec in str(node.data["ober_backends"]).split(","):
        host, port = spec.rsplit(":", 1)
        match = re.fullmatch(r"(.*)\[(\d+)-(\d+)\](.*)", host)
        if match:
            first, last = match.group(2), match.group(3)
            width = len(first)
            names = [f"{match.group(1)}{i:0{width}d}{match.group(4)}" for i in range(int(first), int(last) + 1)]
        else:
            names = [host]
        expected += [f"{name}:{port}" for name in names]
    assert servers == expected
    check_path = node.data.get("ober_backend_check_path", "/")
    assert f"option httpchk HEAD {check_path}" in backend


def test_haproxy_sends_each_vip_to_its_own_pool(node: Rendered) -> None:
    """A VIP with `backends` of its own is routed to them by destination address; the others, and any
    address HAProxy does not know, go to `ober_backends` (be_rgw). /health fails only when no backend at
    all can serve: ober-health counts each VIP's own backend (min_up) and withdraws that VIP alone."""
    config = node.live["haproxy.cfg.j2"]
    frontend = section(config, "frontend s3")
    own: dict[str, str] = {}
    pools: dict[str, str] = {}
    for entry in node.data["ober_vips"]:
        if isinstance(entry, dict) and "backend" in entry:
            own[entry["prefix"].split("/")[0]] = entry["backend"]
            if "backends" in entry:
                pools[entry["backend"]] = entry["backends"]
    assert [line for line in frontend if line.startswith("use_backend")] == [
        f"use_backend {backend} if {{ dst {address} }}" for address, backend in own.items()
    ]
    assert frontend[-1] == "default_backend be_rgw"
    names = ["be_rgw", *pools]
    assert "monitor fail if " + " ".join(f"{{ nbsrv({name}) lt 1 }}" for name in names) in section(
        config, "frontend stats"
    )
    for name, spec in pools.items():
        servers = [line.split()[2] for line in section(config, f"backend {name}") if line.startswith("server ")]
        assert len(servers) == len(hostlist.expand_hostlist(spec)), (name, servers)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("HAProxy version 2.6.12-1+deb12u4 2025/04/03 - https://haproxy.org/\n", (2, 6)),
        ("HAProxy version 3.0.11-1+deb13u4 2026/10/15 - https://haproxy.org/", (3, 0)),
        ("HA-Proxy version 2.4.22-f8e3218 2023/02/14 - https://haproxy.org/", (2, 4)),
        ("\n3.0.11-1+deb13u4\n", (3, 0)),  # not installed yet: apt's candidate
        ("1:3.2.4-1~bpo13+1", (3, 2)),  # a version with an epoch
        ("", None),
        ("\n(none)\n", None),  # apt knows no candidate
    ],
)
def test_haproxy_version_from_the_node_or_its_package_manager(text: str, version: tuple[int, int] | None) -> None:
    assert parse_version(text) == version


def test_handshake_timeout_only_for_a_haproxy_that_has_it(bundles: Bundles, tmp_path: Path) -> None:
    """2.6 rejects `timeout client-hs` (checked here with the local 2.6); 3.0 and later get it."""
    ober = node_settings(HOST, site_data(), resolver=resolver)
    for version, expected in (((2, 6), False), ((3, 0), True), ((3, 2), True), (None, False)):
        config = render_for("haproxy.cfg.j2", ober, PATHS, haproxy=HaproxyFeatures(version))
        assert ("timeout client-hs 10s" in section(config, "defaults")) is expected, version
    if HAPROXY_HERE.version != (2, 6):
        pytest.skip(f"the fallback is checked against HAProxy 2.6; this machine has {HAPROXY_HERE.describe()}")
    (tmp_path / "node").mkdir()
    node = render_node(ober, site_data(), tmp_path / "node")
    assert haproxy_check(node.tmp / "haproxy.cfg").returncode == 0
    with_keyword = node.tmp / "with-client-hs.cfg"
    text = (node.tmp / "haproxy.cfg").read_text()
    with_keyword.write_text(text.replace("    timeout client-fin", "    timeout client-hs 10s\n    timeout client-fin"))
    result = haproxy_check(with_keyword)
    assert result.returncode != 0 and "client-hs" in result.stdout + result.stderr, "2.6 accepted client-hs"


def test_haproxy_sockets_for_operators_and_ober_health(node: Rendered) -> None:
    config = node.live["haproxy.cfg.j2"]
    admin = "stats socket /run/haproxy/admin.sock mode 600 user root group root level admin expose-fd listeners"
    assert admin in config
    assert "stats socket /run/haproxy/ober.sock mode 660 user root group ober level user" in config
    assert "monitor-uri /health" in config  # what health.toml's haproxy_url asks


# ---- ExaBGP


def exabgp_reading(path: Path) -> dict[str, list[str]]:
    """ExaBGP's own re-reading of each neighbor (`validate -n -v` prints it): address -> its lines."""
    result = run([EXABGP, "validate", "-n", "-v", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    neighbors: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (result.stdout + result.stderr).splitlines():
        text = line.split(None, 1)[1].strip() if len(line.split(None, 1)) == 2 else ""
        if match := re.fullmatch(r"neighbor (\S+) \{", text):
            current = neighbors.setdefault(match.group(1), [])
        elif current is not None:
            current.append(text)
    return neighbors


def test_exabgp_validates_one_neighbor_per_peer_with_family_and_local_address(node: Rendered) -> None:
    neighbors = exabgp_reading(Path(node.paths.exabgp_config))
    peers = node.data["ober_peers"]
    assert sorted(neighbors) == sorted(str(ipaddress.ip_address(p["address"])) for p in peers)
    for peer in peers:
        lines = neighbors[peer["address"]]
        version = ipaddress.ip_address(peer["address"]).version
        local = (
            node.data["ober_local_ipv6"]
            if version == 6
            else node.data.get("ober_local_ipv4", node.data["ober_router_id"])
        )
        assert f"local-address {local};" in lines
        assert f"peer-as {peer['asn']};" in lines
        assert f"local-as {node.data['ober_local_asn']};" in lines
        families = lines[lines.index("family {") + 1 : lines.index("}", lines.index("family {"))]
        assert families == [f"ipv{version} unicast;"]
        assert "graceful-restart disable;" in lines  # ExaBGP's reading: no graceful restart
        # ober-health reads the adj-rib-out at start, hears session changes and the router's NOTIFICATIONs
        assert "adj-rib-out true;" in lines
        api = lines[lines.index("api {") + 1 :]
        assert api[:6] == [
            "processes [ ober-health ];",
            "neighbor-changes;",
            "receive {",
            "parsed;",
            "notification;",
            "}",
        ]


def test_exabgp_config_asks_for_no_graceful_restart(node: Rendered) -> None:
    assert "graceful-restart" not in node.live["exabgp.conf.j2"]
    assert "run /opt/ober/venv/bin/ober-health --config /etc/ober/health.toml;" in node.live["exabgp.conf.j2"]


# ---- ober-health


def test_ober_health_accepts_the_config_and_lists_every_vip(node: Rendered) -> None:
    result = run([OBER_HEALTH, "--check", "--config", node.paths.health_config])
    assert result.returncode == 0, result.stdout + result.stderr
    peers = node.data["ober_peers"]
    assert f"OK ({len(node.data['ober_vips'])} VIP(s), {len(peers)} peer(s))" in result.stdout + result.stderr
    config = load_config(Path(node.paths.health_config))
    # the sessions exabgp.conf opens, for status, doctor and test-bgp (INTERFACES §1)
    assert config.bgp is not None
    assert (config.bgp.local_asn, config.bgp.router_id, config.bgp.hold_time) == (
        node.data["ober_local_asn"],
        node.data["ober_router_id"],
        node.data.get("ober_hold_time", 9),
    )
    assert [(p.address, p.asn, p.local_address) for p in config.peers] == [
        (
            str(ipaddress.ip_address(peer["address"])),
            peer["asn"],
            node.ober.local_address(ipaddress.ip_address(peer["address"]).version),
        )
        for peer in peers
    ]
    assert config.health.drain_file == node.paths.drain_file  # the file exabgp.service's stop path writes
    wanted = [({"prefix": v} if isinstance(v, str) else v) for v in node.data["ober_vips"]]
    assert [(v.prefix, v.backend, v.min_up, v.med, list(v.communities)) for v in config.vips] == [
        (w["prefix"], w.get("backend", "be_rgw"), w.get("min_up", 1), w.get("med"), w.get("communities", []))
        for w in wanted
    ]
    health = node.data.get("ober_health") or {}
    assert config.health.interval == health.get("interval", 0.2)
    assert config.health.rise == health.get("rise", 3)
    assert config.health.stats_socket == node.paths.ober_socket


def test_health_toml_reads_back_as_the_model_the_deploy_wrote(node: Rendered) -> None:
    """health.toml is the model's own dump: ober-health's parser gets back exactly the Config the
    controller built, every field included (drain_file, sockets, status endpoint: nothing left to the
    node's defaults)."""
    for paths, text in ((PATHS, node.live["health.toml.j2"]), (node.paths, Path(node.paths.health_config).read_text())):
        assert parse_config(tomllib.loads(text)) == node.ober.node_config(paths)
    for key in ("drain_file", "maintenance_file", "state_file", "stats_socket", "haproxy_url", "status_listen"):
        assert re.search(rf"^{key} = ", node.live["health.toml.j2"], re.M), key


def test_stop_path_and_health_program_name_the_same_drain_file(node: Rendered) -> None:
    """exabgp.service removes at start the drain file its stop path writes, and ober-health reads that file:
    if they differed, a node would stay withdrawn after `systemctl stop` (or never drain)."""
    config = load_config(Path(node.paths.health_config))
    unit = (node.tmp / "exabgp.service").read_text()
    assert f"ExecStartPre=/bin/rm -f {config.health.drain_file}" in unit
    assert f"--config {node.paths.health_config} drain --runtime" in unit


# ---- the VIP script and the units


def test_vips_script_is_valid_sh_listing_every_vip(node: Rendered) -> None:
    result = run(["sh", "-n", node.paths.vips_script])
    assert result.returncode == 0, result.stderr
    line = next(x for x in node.live["ober-vips.sh.j2"].splitlines() if x.startswith("VIPS="))
    assert line == 'VIPS="' + " ".join(vip_prefixes(node.data)) + '"'


def test_haproxy_reload_script_is_valid_sh(node: Rendered, tmp_path: Path) -> None:
    script = tmp_path / "haproxy-reload.sh"
    script.write_text(node.live["haproxy-reload.sh.j2"])
    result = run(["sh", "-n", str(script)])
    assert result.returncode == 0, result.stderr
    assert f"socat -t 2 stdio {PATHS.haproxy_master_socket}" in node.live["haproxy-reload.sh.j2"]


def test_uninstall_script_is_valid_sh_and_refuses_an_unknown_step(node: Rendered, tmp_path: Path) -> None:
    script = tmp_path / "ober-uninstall.sh"
    script.write_text(node.live["ober-uninstall.sh.j2"])
    assert run(["sh", "-n", str(script)]).returncode == 0
    result = run(["sh", str(script), "everything"])
    assert result.returncode == 2 and "usage:" in result.stderr, result
    assert f"done < {PATHS.vips_applied}" in node.live["ober-uninstall.sh.j2"]


@pytest.mark.skipif(not shutil.which("socat"), reason="socat is not installed")
def test_haproxy_reload_script_fails_when_the_master_keeps_its_workers(tmp_path: Path) -> None:
    """The script run for real with stand-ins for systemctl and a master socket that always lists the same
    worker (what a master that could not load the new config answers): exit 1, the reason on stderr; and 0
    where the unit has no master socket (nothing to compare)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "systemctl").chmod(0o755)
    master = tmp_path / "master.sock"
    server = subprocess.Popen(
        ["socat", f"UNIX-LISTEN:{master},fork", "SYSTEM:echo '#<PID> <type> <reloads>'; echo '101 worker 0'"]
    )
    try:
        for _ in range(100):
            if master.exists():
                break
            subprocess.run(["sleep", "0.05"], check=False)
        paths = dataclasses.replace(PATHS, haproxy_master_socket=str(master))
        script = tmp_path / "reload.sh"
        ober = node_settings(HOST, site_data(), resolver=resolver)
        script.write_text(render_for("haproxy-reload.sh.j2", ober, paths))
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        result = run(["sh", str(script)], env=env, timeout=30)
        assert result.returncode == 1 and "kept its old workers" in result.stderr, result
        master.unlink()
        assert run(["sh", str(script)], env=env, timeout=30).returncode == 0
    finally:
        server.terminate()
        server.wait(timeout=5)


def addresses(ip_output: str) -> set[tuple[str, str]]:
    """(device, prefix) of `ip -o address show`, without the loopback's own addresses."""
    found = set()
    for line in ip_output.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] in ("inet", "inet6") and fields[3] not in ("127.0.0.1/8", "::1/128"):
            found.add((fields[1], fields[3]))
    return found


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a network namespace")
def test_vips_script_puts_the_vips_on_and_takes_dropped_ones_off(tmp_path: Path) -> None:
    """The script run for real, twice, in a network and mount namespace of its own (/run a tmpfs there):
    the first list goes on, then a changed list replaces it, leaving no address of the first behind."""
    first = [VIP_V4, "203.0.113.11/32", VIP_V6]
    second = [VIP_V4, "203.0.113.12/32", "2001:db8:203::12/128"]
    for name, vips in (("first", first), ("second", second)):
        ober = node_settings(HOST, dual_stack(ober_vips=vips), resolver=resolver)
        (tmp_path / f"{name}.sh").write_text(render_for("ober-vips.sh.j2", ober, PATHS))
    driver = (
        'set -e; mount -t tmpfs tmpfs /run; cd "$1"; '
        "sh first.sh; ip -o address show > first.ip; cp /run/ober-vips.applied first.applied; "
        "sh second.sh; ip -o address show > second.ip; cp /run/ober-vips.applied second.applied"
    )
    result = run(["unshare", "--net", "--mount", "sh", "-c", driver, "sh", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    device = "lo" if "no dummy interface support" in result.stderr else PATHS.vip_interface
    for name, vips in (("first", first), ("second", second)):
        on_node = addresses((tmp_path / f"{name}.ip").read_text())
        assert on_node == {(device, prefix) for prefix in vips}, name
        applied = {tuple(line.split()) for line in (tmp_path / f"{name}.applied").read_text().splitlines()}
        assert applied == on_node, name


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(node: Rendered) -> None:
    units = [node.tmp / "exabgp.service", node.tmp / "ober-vips.service", node.tmp / "ober-ocsp.timer"]
    if node.ober.bfd:
        units.append(node.tmp / "ober-bfdd.service")
    result = run(["systemd-analyze", "verify", *map(str, units)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""  # parse warnings do not change the exit code


def test_exabgp_unit_watchdog_covers_two_check_loops_and_catches_a_hang_within_3s(node: Rendered) -> None:
    unit = node.live["exabgp.service.j2"]
    health = {"interval": 0.2, "timeout": 0.5} | (node.data.get("ober_health") or {})
    seconds = int(re.search(r"^WatchdogSec=(\d+)ms$", unit, re.M).group(1)) / 1000  # type: ignore[union-attr]
    assert seconds >= 2 * (health["interval"] + 2 * health["timeout"])
    if not node.data.get("ober_health"):
        assert seconds <= 2.5, "the default timers must let the watchdog catch a hung health program within 3 s"
    assert f"TimeoutStopSec={DRAIN_TIMEOUT + 15}" in unit
    assert "ExecStart=/opt/ober/venv/bin/exabgp /etc/ober/exabgp.conf" in unit


def test_exabgp_unit_drains_on_stop_without_asking_systemd(node: Rendered) -> None:
    """A reboot or `systemctl isolate` stops exabgp.service while D-Bus goes down: a stop path that asks
    `systemctl` skipped the drain (issue 9). It runs `ober drain` and nothing else."""
    unit = node.live["exabgp.service.j2"]
    stop = [line for line in unit.splitlines() if line.startswith("ExecStop")]
    assert stop == [
        f"ExecStop=-{PATHS.venv}/bin/ober --config {PATHS.health_config} drain --runtime --wait"
        f' --timeout {DRAIN_TIMEOUT} --reason "service stop"'
    ]
    assert "systemctl" not in "\n".join(line for line in unit.splitlines() if not line.startswith("#"))
    assert f"ExecStartPre=/bin/rm -f {PATHS.drain_file}" in unit  # the drain file health.toml names


def test_exabgp_reads_its_settings_from_the_environment_file_the_unit_names(node: Rendered, tmp_path: Path) -> None:
    """ExaBGP's own environment loader, pointed at the rendered file as the unit points it (EXABGP_ENVFILE):
    acks on (ober-health matches each done/error to its command), no daemonizing under systemd, logs on
    stdout for the journal. With the file there ExaBGP no longer logs "environment file missing" at start."""
    unit = node.live["exabgp.service.j2"]
    assert f"Environment=EXABGP_ENVFILE={PATHS.exabgp_env}" in unit
    assert "Environment=exabgp_" not in unit, "one place for ExaBGP's settings: its environment file"
    env_file = tmp_path / "exabgp.env"
    env_file.write_text(node.live["exabgp.env.j2"])
    probe = (
        "from exabgp.environment import getenv; e = getenv();"
        "print(e.api.ack, e.api.cli, e.daemon.daemonize, e.log.destination, e.log.statistics)"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-c", probe],
        env={**os.environ, "EXABGP_ENVFILE": str(env_file)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True", "False", "False", "stdout", "False"], result.stdout + result.stderr


def bfdd_check(conf: Path) -> str:
    """FRR's bfdd in dry-run mode, on a copy of `conf` it can read as user frr (mode 644, as tasks/bfd.py puts
    it in /etc/frr), in its own network namespace (it binds its ports even in dry-run). It exits 0 on an
    unknown command, so its error lines are what tells."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        copy = Path(directory) / "ober-bfdd.conf"
        shutil.copy(conf, copy)
        copy.chmod(0o644)
        result = run(["unshare", "--net", str(BFDD), "-C", "-f", str(copy)])
    assert result.returncode == 0, result.stdout + result.stderr
    return "\n".join(x for x in (result.stdout + result.stderr).splitlines() if "[EC " in x or "No such" in x)


@pytest.mark.skipif(not BFDD.exists() or not shutil.which("unshare"), reason="FRR's bfdd is not installed")
def test_bfdd_reads_the_config_with_a_session_per_bfd_peer(node: Rendered) -> None:
    text = node.live["bfdd.conf.j2"]
    bfd_peers = [p for p in node.data["ober_peers"] if p.get("bfd")]
    assert re.findall(r"^ peer (\S+)", text, re.M) == [p["address"] for p in bfd_peers]
    assert bfdd_check(node.tmp / "bfdd.conf") == ""


@pytest.mark.skipif(not BFDD.exists() or not shutil.which("unshare"), reason="FRR's bfdd is not installed")
def test_bfdd_check_fails_on_a_broken_config(tmp_path: Path) -> None:
    conf = tmp_path / "bfdd.conf"
    conf.write_text("bfd\n peer 198.51.100.300\n exit\nexit\n")
    assert "No such command" in bfdd_check(conf)


# ---- each checker fails on a broken render (or the checks above prove nothing)


def broken(bundles: Bundles, tmp_path: Path, **changes: Any) -> Rendered:
    """A node whose settings were changed after validation: what a template bug would produce."""
    data = dual_stack(ober_tls_certificates=[str(bundles.good)])
    ober = dataclasses.replace(node_settings(HOST, data, resolver=resolver), **changes)
    return render_node(ober, data, tmp_path)


def test_haproxy_check_fails_on_a_broken_server_line(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path, pools=(Pool("be_rgw", (Backend("rgw1", "rgw 01.internal", 7480),)),))
    result = haproxy_check(node.tmp / "haproxy.cfg")
    assert result.returncode != 0
    assert "haproxy.cfg" in result.stdout + result.stderr


def test_haproxy_check_fails_without_the_certificates(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path)
    for bundle in (node.tmp / "certs").iterdir():
        bundle.unlink()
    result = haproxy_check(node.tmp / "haproxy.cfg")
    assert result.returncode != 0, "an empty crt directory must not pass"


def test_exabgp_check_fails_on_a_broken_neighbor(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path, peers=(Peer("198.51.100.1", 65000), Peer("198.51.100.1", 65000)))
    result = run([EXABGP, "validate", node.paths.exabgp_config])
    assert result.returncode != 0, result.stdout + result.stderr


def test_ober_health_check_fails_on_a_broken_vip(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path)
    health = Path(node.paths.health_config)
    health.write_text(health.read_text().replace("min_up = 2", "min_up = -2"))
    result = run([OBER_HEALTH, "--check", "--config", str(health)])
    assert result.returncode != 0
    assert "min_up" in result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_fails_on_a_unit_it_cannot_run(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path)
    unit = node.tmp / "exabgp.service"
    unit.write_text(unit.read_text().replace(str(VENV_BIN.parent), "/nonexistent/venv"))
    result = run(["systemd-analyze", "verify", str(unit)])
    assert result.returncode != 0
    assert "/nonexistent/venv/bin/exabgp" in result.stdout + result.stderr


def test_sh_n_fails_on_a_broken_script(bundles: Bundles, tmp_path: Path) -> None:
    node = broken(bundles, tmp_path)
    script = Path(node.paths.vips_script)
    script.write_text(script.read_text().replace("esac", "", 1))
    assert run(["sh", "-n", str(script)]).returncode != 0


def test_the_public_copy_of_a_bundle_has_its_certificates_and_no_key(bundles: Bundles, tmp_path: Path) -> None:
    """tasks/tls.py: what ober-health reads the end date from (the bundle itself is root's alone)."""
    from ober_deploy.tls import public_part
    from ober_health.certs import not_after

    copy = tmp_path / bundles.good.name
    copy.write_text(public_part(bundles.good))
    text = copy.read_text()
    assert "PRIVATE KEY" not in text and text.count("-----BEGIN CERTIFICATE-----") >= 1
    assert not_after(copy) is not None and not_after(copy) == not_after(bundles.good)
