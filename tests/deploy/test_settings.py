"""Inventory validation on the controller: every bad value stops the deploy with a line naming host, key, value.

An operator reads `edge-7: ober_vips[0].prefix: '203.0.113.300/32' is not an IP prefix (...)` and knows what
to fix where. Each case below changes one key of data that validates, and checks that line is there. The
rules a node shares (VIPs, timers, ASNs, hold time) are ober-health's own parsers (ober_health/config.py)
called with the inventory's key names: the lines here are the node's messages with the host in front.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ober_deploy.keys import KNOWN_KEYS, markdown_table
from ober_deploy.settings import (
    Backend,
    InventoryError,
    NodeSettings,
    Peer,
    node_settings,
    validate_inventory,
)
from ober_health.config import VipConfig
from tests.deploy.conftest import Bundles
from tests.deploy.support import (
    HOST,
    NODE_V4,
    NODE_V6,
    REPO,
    ROUTER_V4,
    ROUTER_V6,
    VIP_V4,
    VIP_V6,
    prod_hosts,
    resolver,
    run,
    site_data,
)


def settings_of(data: dict[str, Any], host: str = HOST) -> NodeSettings:
    return node_settings(host, data, resolver=resolver)


def problems_of(data: dict[str, Any], host: str = HOST) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        settings_of(data, host)
    problems = caught.value.problems
    assert problems, "an InventoryError must say what is wrong"
    assert str(caught.value) == "\n".join(problems)
    return problems


def line_for(problems: list[str], key: str, value_text: str, host: str = HOST) -> str:
    """The problem line `host: key: value why` (or `host: key: unknown key (value ...`); fails showing every
    line when there is none."""
    for line in problems:
        if line.startswith(f"{host}: {key}: ") and value_text in line[len(f"{host}: {key}: ") :]:
            return line
    raise AssertionError(f"no line '{host}: {key}: {value_text} ...' among:\n" + "\n".join(problems))


def test_site_data_validates() -> None:
    """The base every case below changes one key of: it must be good, or the cases prove nothing."""
    node = settings_of(site_data())
    assert node.local_asn == 65001
    assert node.peers == (Peer(ROUTER_V4, 65000, local_address=NODE_V4),)
    assert node.vips == (VipConfig(VIP_V4, backend="be_rgw"),)
    assert node.backends == (Backend("rgw1", "rgw01.internal", 7480), Backend("rgw2", "rgw02.internal", 7480))


def peer(**values: Any) -> dict[str, Any]:
    return {"address": ROUTER_V4, "asn": 65000, **values}


def vip(**values: Any) -> dict[str, Any]:
    return {"prefix": VIP_V4, **values}


# (key changed, its bad value, the key the line names, the value as the line shows it, a word of the reason)
CASES: list[tuple[str, Any, str, str, str]] = [
    ("ober_local_asn", 0, "ober_local_asn", "0", "out of range"),
    ("ober_local_asn", 4294967296, "ober_local_asn", "4294967296", "out of range"),
    ("ober_local_asn", "x", "ober_local_asn", "'x'", "not a number"),
    ("ober_local_asn", True, "ober_local_asn", "True", "not a number"),
    ("ober_local_asn", 65001.0, "ober_local_asn", "65001.0", "not a whole number"),
    ("ober_router_id", "2001:db8::1", "ober_router_id", "'2001:db8::1'", "IPv4"),
    ("ober_router_id", "198.51.100.300", "ober_router_id", "'198.51.100.300'", "not an IP address"),
    ("ober_router_id", "router1", "ober_router_id", "'router1'", "not an IP address"),
    ("ober_local_ipv4", NODE_V6, "ober_local_ipv4", repr(NODE_V6), "IPv4"),
    ("ober_local_ipv6", NODE_V4, "ober_local_ipv6", repr(NODE_V4), "IPv6"),
    ("ober_peers", [], "ober_peers", "[]", "non-empty"),
    ("ober_peers", [peer(address="198.51.100.256")], "ober_peers[0].address", "'198.51.100.256'", "not an IP"),
    ("ober_peers", [peer(asn=0)], "ober_peers[0].asn", "0", "out of range"),
    ("ober_peers", [peer(asn=4294967296)], "ober_peers[0].asn", "4294967296", "out of range"),
    ("ober_peers", [peer(password="s3cret")], "ober_peers[0].password", "'s3cret'", "unknown key"),
    ("ober_peers", [peer(), peer()], "ober_peers[1].address", repr(ROUTER_V4), "listed twice"),
    ("ober_peers", [peer(bfd="yes")], "ober_peers[0].bfd", "'yes'", "true or false"),
    ("ober_hold_time", 2, "ober_hold_time", "2", "out of range (3..65535)"),
    ("ober_hold_time", 65536, "ober_hold_time", "65536", "out of range"),
    ("ober_vips", ["203.0.113.300/32"], "ober_vips[0].prefix", "'203.0.113.300/32'", "not an IP prefix"),
    ("ober_vips", ["203.0.113.10/24"], "ober_vips[0].prefix", "'203.0.113.10/24'", "did you mean 203.0.113.0/24"),
    ("ober_vips", ["203.0.113.10/31"], "ober_vips[0].prefix", "'203.0.113.10/31'", "one address"),
    ("ober_vips", ["203.0.113.10"], "ober_vips[0].prefix", "'203.0.113.10'", "e.g. 203.0.113.10/32"),
    ("ober_vips", [VIP_V4, VIP_V4], "ober_vips[1].prefix", repr(VIP_V4), "listed twice"),
    ("ober_vips", [vip(backend="be_swift")], "ober_vips[0].backend", "'be_swift'", "not a backend"),
    ("ober_vips", [vip(med=4294967296)], "ober_vips[0].med", "4294967296", "out of range"),
    ("ober_vips", [vip(med=-1)], "ober_vips[0].med", "-1", "out of range"),
    ("ober_vips", [vip(min_up=-1)], "ober_vips[0].min_up", "-1", "out of range"),
    ("ober_vips", [vip(min_up=0)], "ober_vips[0].min_up", "0", "out of range (1..100000)"),  # as ober-health
    ("ober_vips", [vip(communities=["65000:100000"])], "ober_vips[0].communities[0]", "'65000:100000'", "community"),
    ("ober_vips", [vip(communities=["65536:1"])], "ober_vips[0].communities[0]", "'65536:1'", "0..65535"),
    ("ober_vips", [vip(communities="65000:1")], "ober_vips[0].communities", "'65000:1'", "is not a list"),
    ("ober_vips", [vip(weight=5)], "ober_vips[0].weight", "5", "unknown key"),
    ("ober_vips", [], "ober_vips", "[]", "non-empty"),
    ("ober_backends", "rgw[01-.internal:7480", "ober_backends", "'rgw[01-.internal:7480'", "malformed hostlist"),
    ("ober_backends", "rgw01.internal", "ober_backends", "'rgw01.internal'", "no valid :port"),
    ("ober_backends", "rgw01.internal:70000", "ober_backends", "'rgw01.internal:70000'", "no valid :port"),
    ("ober_backends", "rgw01.internal:0", "ober_backends", "'rgw01.internal:0'", "no valid :port"),
    ("ober_backends", "rgw99.internal:7480", "ober_backends", "'rgw99.internal'", "does not resolve"),
    ("ober_backends", "rgw_01.internal:7480", "ober_backends", "'rgw_01.internal:7480'", "not a hostname"),
    ("ober_backends", ["rgw01.internal:7480", "rgw 2:1"], "ober_backends[1]", "'rgw 2:1'", "not a hostname"),
    ("ober_backends", ["rgw01.internal:7480"] * 2, "ober_backends", "'rgw01.internal:7480'", "listed twice"),
    ("ober_backends", [], "ober_backends", "[]", "hostlist"),
    ("ober_backend_check_path", "health", "ober_backend_check_path", "'health'", "absolute"),
    ("ober_backend_check_path", "/a b", "ober_backend_check_path", "'/a b'", "without spaces"),
    ("ober_http", "no", "ober_http", "'no'", "true or false"),
    ("ober_whitelist_frontend", ["198.51.100.0/33"], "ober_whitelist_frontend[0]", "'198.51.100.0/33'", "prefix"),
    ("ober_whitelist_frontend", "10.0.0.0/8, clients", "ober_whitelist_frontend", "'10.0.0.0/8, clients'", "resolve"),
    ("ober_whitelist_frontend", ["weka[001-"], "ober_whitelist_frontend[0]", "'weka[001-'", "hostlist"),
    (
        "ober_whitelist_frontend",
        ["rgw01.internal/24"],
        "ober_whitelist_frontend[0]",
        "'rgw01.internal/24'",
        "host name",
    ),
    ("ober_whitelist_routers", ["routers"], "ober_whitelist_routers[0]", "'routers'", "does not resolve"),
    ("ober_vips", ["127.0.0.1/32"], "ober_vips[0].prefix", "'127.0.0.1/32'", "a loopback address"),
    ("ober_vips", ["::1/128"], "ober_vips[0].prefix", "'::1/128'", "a loopback address"),
    ("ober_vips", ["224.0.0.5/32"], "ober_vips[0].prefix", "'224.0.0.5/32'", "a multicast address"),
    ("ober_vips", ["ff02::5/128"], "ober_vips[0].prefix", "'ff02::5/128'", "a multicast address"),
    ("ober_vips", ["0.0.0.0/32"], "ober_vips[0].prefix", "'0.0.0.0/32'", "the unspecified address"),
    ("ober_vips", ["169.254.0.10/32"], "ober_vips[0].prefix", "'169.254.0.10/32'", "a link-local address"),
    ("ober_vips", ["fe80::10/128"], "ober_vips[0].prefix", "'fe80::10/128'", "a link-local address"),
    ("ober_vips", ["255.255.255.255/32"], "ober_vips[0].prefix", "'255.255.255.255/32'", "a reserved address"),
    ("ober_vips", [f"{NODE_V4}/32"], "ober_vips[0].prefix", f"'{NODE_V4}/32'", "is ober_router_id"),
    ("ober_vips", [f"{ROUTER_V4}/32"], "ober_vips[0].prefix", f"'{ROUTER_V4}/32'", "is ober_peers[0].address"),
    ("ober_whitelist_backend", ["192.0.2.1/24"], "ober_whitelist_backend[0]", "'192.0.2.1/24'", "host bits"),
    ("ober_whitelist_backend", {"net": "192.0.2.0/24"}, "ober_whitelist_backend", "{'net': '192.0.2.0/24'}", "list"),
    ("ober_health", {"jitter": 0.1}, "ober_health.jitter", "0.1", "unknown key"),
    ("ober_health", {"rise": 0}, "ober_health.rise", "0", "out of range (1..1000)"),
    ("ober_health", {"interval": "fast"}, "ober_health.interval", "'fast'", "not a number"),
    ("ober_health", {"fall": 2.5}, "ober_health.fall", "2.5", "not a whole number"),
    ("ober_health", {"interval": 0.05, "timeout": 1.0}, "ober_health.timeout", "1.0", "more than 10x"),
    ("ober_health", "fast", "ober_health", "'fast'", "not a table"),
    ("ober_kernel_tuning", "yes", "ober_kernel_tuning", "'yes'", "true or false"),
    ("ober_check_dns", "no", "ober_check_dns", "'no'", "true or false"),
    ("ober_maxconn", 50, "ober_maxconn", "50", "out of range"),
    ("ober_haproxy_repository", "", "ober_haproxy_repository", "''", "apt source line"),
    ("ober_wheels_dir", "/nonexistent/wheels", "ober_wheels_dir", "'/nonexistent/wheels'", "not a directory"),
    ("ober_local_as", 65001, "ober_local_as", "65001", "typo"),
    ("ober_vip", [VIP_V4], "ober_vip", repr([VIP_V4]), "typo"),
]


@pytest.mark.parametrize(("key", "value", "named_key", "value_text", "why"), CASES)
def test_bad_value_is_named_with_host_key_and_value(
    key: str, value: Any, named_key: str, value_text: str, why: str
) -> None:
    line = line_for(problems_of(site_data(**{key: value})), named_key, value_text)
    assert why in line


def test_a_vip_with_its_own_pool_gets_its_own_backend() -> None:
    """`backends` on a VIP: a hostlist of its own, an HAProxy backend named by `backend` (or after the VIP),
    counted by ober-health for that VIP alone; VIPs without one share `ober_backends` (be_rgw)."""
    web = {"prefix": "203.0.113.20/32", "backend": "be_web", "backends": "192.0.2.[31-32]:8080", "min_up": 2}
    node = settings_of(
        site_data(ober_vips=[VIP_V4, web, {"prefix": "203.0.113.30/32", "backends": "rgw01.internal:80"}])
    )
    assert [vip.backend for vip in node.vips] == ["be_rgw", "be_web", "be_vip2"]
    assert node.backend_names == ("be_rgw", "be_web", "be_vip2")
    assert node.pools[1].servers == (Backend("rgw1", "192.0.2.31", 8080), Backend("rgw2", "192.0.2.32", 8080))
    assert node.node_config().vips[1].min_up == 2


@pytest.mark.parametrize(
    ("vip_entry", "named_key", "value_text", "why"),
    [
        ({"backends": "web[1-.internal:80"}, "ober_vips[1].backends", "'web[1-.internal:80'", "malformed hostlist"),
        ({"backends": "web99.internal:80"}, "ober_vips[1].backends", "'web99.internal'", "does not resolve"),
        ({"backend": "be_rgw", "backends": "192.0.2.31:80"}, "ober_vips[1].backend", "'be_rgw'", "ober_backends"),
        ({"backend": "be_web"}, "ober_vips[1].backend", "'be_web'", "not a backend this deploy defines"),
        ({"backend": "be web", "backends": "192.0.2.31:80"}, "ober_vips[1].backend", "'be web'", "backend name"),
    ],
)
def test_a_bad_pool_of_a_vip_is_named(vip_entry: dict[str, Any], named_key: str, value_text: str, why: str) -> None:
    data = site_data(ober_vips=[VIP_V4, {"prefix": "203.0.113.20/32", **vip_entry}])
    assert why in line_for(problems_of(data), named_key, value_text)


def test_two_vips_cannot_give_one_backend_two_pools() -> None:
    vips = [
        {"prefix": "203.0.113.20/32", "backend": "be_web", "backends": "192.0.2.31:80"},
        {"prefix": "203.0.113.21/32", "backend": "be_web", "backends": "192.0.2.32:80"},
    ]
    assert "differs" in line_for(problems_of(site_data(ober_vips=vips)), "ober_vips[1].backends", "'192.0.2.32:80'")
    shared = [vips[0], {"prefix": "203.0.113.21/32", "backend": "be_web"}]  # naming it is enough
    assert settings_of(site_data(ober_vips=shared)).backend_names == ("be_rgw", "be_web")


def test_the_readme_key_table_is_the_key_table() -> None:
    """An operator reads the keys, their defaults and ranges in the README: that table is ober_deploy/keys.py's
    output (`python -m ober_deploy.keys`), so a key added, renamed or given another default shows there."""
    assert markdown_table() in (REPO / "README.md").read_text()


def test_defaults_are_applied_without_group_data() -> None:
    """group_data/all.py repeats no default: a host with only the site's keys gets the table's defaults."""
    node = settings_of(site_data())
    assert (node.hold_time, node.maxconn, node.kernel_tuning, node.backend_check_path) == (9, 100000, True, "/")
    assert (node.health.interval, node.health.timeout, node.health.rise, node.health.fall) == (0.2, 0.5, 3, 2)


def test_peer_address_outside_router_whitelist() -> None:
    problems = problems_of(site_data(ober_whitelist_routers=["192.0.2.0/24"]))
    assert "not inside ober_whitelist_routers" in line_for(problems, "ober_peers[0].address", repr(ROUTER_V4))


def test_backend_resolving_outside_backend_whitelist_names_name_and_address() -> None:
    problems = problems_of(site_data(ober_whitelist_backend=["192.0.2.22/32"]))
    assert "not inside ober_whitelist_backend" in line_for(problems, "ober_backends", "'rgw01.internal (192.0.2.21)'")
    assert not any("rgw02" in line for line in problems), problems


def test_backend_names_are_not_resolved_with_check_dns_off() -> None:
    asked: list[str] = []

    def recording(name: str) -> list[str]:
        asked.append(name)
        return []

    node = node_settings(HOST, site_data(ober_backends="rgw99.internal:7480", ober_check_dns=False), resolver=recording)
    assert node.backends == (Backend("rgw1", "rgw99.internal", 7480),)
    assert asked == []


def test_ipv6_vip_without_ipv6_peer() -> None:
    problems = problems_of(site_data(ober_vips=[VIP_V4, VIP_V6], ober_local_ipv6=NODE_V6))
    assert "needs an IPv6 BGP session" in line_for(problems, "ober_vips[1].prefix", repr(VIP_V6))
    assert len(problems) == 1, problems


def test_ipv6_session_needs_the_nodes_ipv6_address() -> None:
    data = site_data(ober_vips=[VIP_V4, VIP_V6], ober_peers=[peer(), peer(address=ROUTER_V6)])
    assert "IPv6 session" in line_for(problems_of(data), "ober_local_ipv6", "None")
    node = settings_of({**data, "ober_local_ipv6": NODE_V6})
    assert node.families == (4, 6)
    assert node.local_address(6) == NODE_V6


def test_no_frontend_at_all() -> None:
    problems = problems_of(site_data(ober_http=False))
    assert "no frontend would serve the VIPs" in line_for(problems, "ober_tls_certificates", "[]")


def test_tls_bundle_missing(tmp_path: Path) -> None:
    path = str(tmp_path / "s3.example.org.pem")
    problems = problems_of(site_data(ober_tls_certificates=[path]))
    assert "no such file on the controller" in line_for(problems, "ober_tls_certificates[0]", repr(path))


def test_tls_key_does_not_match_certificate(bundles: Bundles) -> None:
    problems = problems_of(site_data(ober_tls_certificates=[str(bundles.mismatched)]))
    line = line_for(problems, "ober_tls_certificates[0]", repr(str(bundles.mismatched)))
    assert "the private key does not match the certificate" in line


def test_tls_certificate_expired(bundles: Bundles) -> None:
    problems = problems_of(site_data(ober_tls_certificates=[str(bundles.expired)]))
    line = line_for(problems, "ober_tls_certificates[0]", repr(str(bundles.expired)))
    assert "the certificate has expired" in line
    assert "2020" in line  # the end date, so the operator sees how stale it is


def test_tls_bundle_without_key(bundles: Bundles, tmp_path: Path) -> None:
    text = bundles.good.read_text()
    only_cert = tmp_path / "cert-only.pem"
    only_cert.write_text(text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n")
    problems = problems_of(site_data(ober_tls_certificates=[str(only_cert)]))
    assert "no private key" in line_for(problems, "ober_tls_certificates[0]", repr(str(only_cert)))


def test_paths_the_controller_cannot_stat_are_named(bundles: Bundles) -> None:
    """Path.is_file()/is_dir() raise for a name too long: that was a traceback, not a line."""
    long_path = "/" + "x" * 300 + ".pem"
    problems = problems_of(site_data(ober_tls_certificates=[long_path], ober_wheels_dir="/" + "w" * 300))
    assert "not readable on the controller" in line_for(problems, "ober_tls_certificates[0]", repr(long_path))
    assert "not a directory" in line_for(problems, "ober_wheels_dir", repr("/" + "w" * 300))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch to nobody")
def test_tls_bundle_the_operator_cannot_read(bundles: Bundles, tmp_path: Path) -> None:
    """A bundle in a directory the controller's user cannot enter: a named line, not a PermissionError."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    bundle = private / "s3.pem"
    shutil.copy(bundles.good, bundle)
    script = (
        "import sys\n"
        "from ober_deploy.settings import InventoryError, node_settings\n"
        "from tests.deploy.support import resolver, site_data\n"
        f"data = site_data(ober_tls_certificates=[{str(bundle)!r}])\n"
        "try:\n"
        "    node_settings('edge-7', data, resolver=resolver)\n"
        "except InventoryError as error:\n"
        "    print(error)\n"
    )
    result = run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script], cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    problems = result.stdout.splitlines()
    assert "Permission denied" in line_for(problems, "ober_tls_certificates[0]", repr(str(bundle)))


def test_tls_good_bundle_is_accepted(bundles: Bundles) -> None:
    """The control of the three above: the same check passes a bundle HAProxy would load."""
    node = settings_of(site_data(ober_tls_certificates=[str(bundles.good)], ober_http=False))
    assert node.tls_certificates == (bundles.good,)
    assert node.http is False


def test_every_problem_of_a_host_in_one_error() -> None:
    data = site_data(ober_local_asn=0, ober_hold_time=2, ober_kernel_tuning="yes", ober_vips=["203.0.113.300/32"])
    problems = problems_of(data)
    line_for(problems, "ober_local_asn", "0")
    line_for(problems, "ober_hold_time", "2")
    line_for(problems, "ober_kernel_tuning", "'yes'")
    line_for(problems, "ober_vips[0].prefix", "'203.0.113.300/32'")


def test_validate_inventory_reports_every_host_in_one_error() -> None:
    ip_backends = {"ober_backends": "192.0.2.21:7480"}  # validate_inventory resolves with the real DNS
    hosts = [
        ("edge-1", site_data(ober_local_asn=0, **ip_backends), None),
        ("edge-2", site_data(**ip_backends), None),
        ("edge-3", site_data(ober_vips=["203.0.113.10/24"], ober_hold_tme=9, **ip_backends), None),
    ]
    with pytest.raises(InventoryError) as caught:
        validate_inventory(hosts)
    problems = caught.value.problems
    line_for(problems, "ober_local_asn", "0", host="edge-1")
    line_for(problems, "ober_vips[0].prefix", "'203.0.113.10/24'", host="edge-3")
    line_for(problems, "ober_hold_tme", "9", host="edge-3")
    assert len(problems) == 3, problems
    assert not any(line.startswith("edge-2:") for line in problems)
    assert str(caught.value).splitlines() == problems


def test_router_id_defaults_to_the_hosts_address() -> None:
    data = site_data()
    del data["ober_router_id"]
    assert validate_inventory([("edge-1", {**data, "ober_backends": "192.0.2.21:7480"}, NODE_V4)])[
        "edge-1"
    ].router_id == (NODE_V4)
    problems = problems_of(data)
    line_for(problems, "ober_router_id", "required, not set (the default, the host's address, is not an IP")


def test_prod_inventory_validates_and_expands_the_hostlist(bundles: Bundles) -> None:
    hosts = prod_hosts(bundles.good)
    fleet = {name: node_settings(name, data, address, resolver=resolver) for name, data, address in hosts}
    assert sorted(fleet) == ["ingress01", "ingress02", "ingress03", "ingress04"]
    for node in fleet.values():
        assert node.backends == tuple(Backend(f"rgw{i}", f"rgw{i:02d}.storage.example.org", 7480) for i in range(1, 9))
        assert [p.address for p in node.peers if p.version == 6] and all(p.bfd for p in node.peers)
        assert node.vips[0] == VipConfig(VIP_V4, backend="be_rgw", min_up=2, med=100, communities=("65101:100",))
        assert node.families == (4, 6)
        assert node.backend_check_path == "/swift/healthcheck"
        assert node.tls_certificates == (bundles.good,)
    assert fleet["ingress03"].peers[0].address == "203.0.113.132"


def test_prod_inventory_through_validate_inventory_and_dns(bundles: Bundles, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate_inventory uses the controller's resolver (socket.getaddrinfo): faked at that edge only."""
    looked_up: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in resolver(host)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    fleet = validate_inventory(prod_hosts(bundles.good))
    assert [len(node.backends) for node in fleet.values()] == [8, 8, 8, 8]
    assert set(looked_up) == {f"rgw{i:02d}.storage.example.org" for i in range(1, 9)}

    # the same fleet with one RGW address outside ober_whitelist_backend: named, on every host
    DNS_OUTSIDE = {**{h: resolver(h) for h in looked_up}, "rgw05.storage.example.org": ["198.51.100.99"]}
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (x, 0)) for x in DNS_OUTSIDE[host]],
    )
    with pytest.raises(InventoryError) as caught:
        validate_inventory(prod_hosts(bundles.good))
    for name in ("ingress01", "ingress02", "ingress03", "ingress04"):
        line_for(caught.value.problems, "ober_backends", "'rgw05.storage.example.org (198.51.100.99)'", host=name)


# ---- regressions: values the validation let through before, that a node would have choked on


@pytest.mark.parametrize(
    ("key", "value", "named_key", "value_text"),
    [
        # int() of a non-ASCII digit raised ValueError out of node_settings
        ("ober_backends", "rgw01.internal:²", "ober_backends", "'rgw01.internal:²'"),
        ("ober_backends", "rgw01.internal:７４８０", "ober_backends", "'rgw01.internal:７４８０'"),
        # `$` matched before a trailing newline: the name went into haproxy.cfg with the newline
        ("ober_backends", "rgw01.internal\n:7480", "ober_backends", "'rgw01.internal\\n:7480'"),
        # a newline broke health.toml's string, full-width digits are rejected by ober-health's config
        ("ober_vips", [vip(communities=["65000:100\n"])], "ober_vips[0].communities[0]", "'65000:100\\n'"),
        ("ober_vips", [vip(communities=["６５０００:100"])], "ober_vips[0].communities[0]", "'６５０００:100'"),
        # ipaddress takes integers: 65001 became router-id 0.0.253.233
        ("ober_router_id", 65001, "ober_router_id", "65001"),
        ("ober_peers", [peer(address=65000)], "ober_peers[0].address", "65000"),
        ("ober_peers", [peer(address=True)], "ober_peers[0].address", "True"),
        ("ober_whitelist_frontend", [10], "ober_whitelist_frontend[0]", "10"),
        # ober-health refuses scoped prefixes; HAProxy has no zone in an ACL network
        ("ober_vips", ["2001:db8:203::10%eth0/128"], "ober_vips[0].prefix", "'2001:db8:203::10%eth0/128'"),
        ("ober_whitelist_frontend", ["2001:db8::%eth0/64"], "ober_whitelist_frontend[0]", "'2001:db8::%eth0/64'"),
        # one line in a dnf .repo file / an apt source: a newline would add lines of its own
        (
            "ober_haproxy_repository",
            "https://m/el10\ngpgcheck=0",
            "ober_haproxy_repository",
            "'https://m/el10\\ngpgcheck=0'",
        ),
    ],
)
def test_values_a_node_would_choke_on(key: str, value: Any, named_key: str, value_text: str) -> None:
    line_for(problems_of(site_data(**{key: value})), named_key, value_text)


def test_unknown_subkeys_of_mixed_types_are_all_named() -> None:
    """sorted() of keys 'x' and 1 raised TypeError: the operator got a traceback instead of the two lines."""
    problems = problems_of(site_data(ober_peers=[peer(**{"x": 3}) | {1: 2}], ober_vips=[vip(y=4) | {2: 5}]))
    line_for(problems, "ober_peers[0].x", "3")
    line_for(problems, "ober_peers[0].1", "2")
    line_for(problems, "ober_vips[0].y", "4")
    line_for(problems, "ober_vips[0].2", "5")


# ---- any value of any key: an InventoryError naming the host, or settings; never another exception

SPECIAL_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\n",
        "0",
        "65001",
        "198.51.100.1",
        "2001:db8::1",
        "fe80::1%eth0",
        "203.0.113.10/32",
        "203.0.113.10/24",
        "2001:db8:203::10/128",
        "::ffff:203.0.113.10/128",
        "rgw[01-08].internal:7480",
        "rgw[01-.internal:7480",
        "rgw[08-01]:1",
        "rgw01.internal:²",
        "[2001:db8::1]:7480",
        "rgw01.internal:",
        ":7480",
        "65000:100",
        "65000:100000",
        "/",
        ".",
        "/dev/null",
        "be_rgw",
        "yes",
        "ober_",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-1, max_value=70000)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | SPECIAL_STRINGS
    | st.binary(max_size=8)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8) | st.integers() | SPECIAL_STRINGS, children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["address", "asn", "bfd", "prefix", "backend", "min_up", "med", "communities"]) | st.text(),
            children,
            max_size=6,
        )
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(sorted(KNOWN_KEYS)) | st.text(max_size=10).map(lambda s: "ober_" + s)


def check_any(data: dict[str, Any]) -> None:
    try:
        node = settings_of(data)
    except InventoryError as error:
        assert error.problems
        assert all(line.startswith(f"{HOST}: ") for line in error.problems), error.problems
    else:
        assert isinstance(node, NodeSettings)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=KEYS, value=VALUES)
def test_any_value_of_any_key_is_settings_or_inventory_error(key: str, value: Any) -> None:
    check_any(site_data(**{key: value}))


SUBKEYS = (
    st.sampled_from(["address", "asn", "bfd", "prefix", "med", "rise", "interval"])
    | st.text(max_size=6)
    | st.integers()
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=st.dictionaries(SUBKEYS, VALUES, max_size=3), where=st.sampled_from(["peer", "vip", "health"]))
def test_any_subkeys_are_settings_or_inventory_error(extra: dict[Any, Any], where: str) -> None:
    if where == "peer":
        check_any(site_data(ober_peers=[{**peer(), **extra}]))
    elif where == "vip":
        check_any(site_data(ober_vips=[{**vip(), **extra}]))
    else:
        check_any(site_data(ober_health=extra))


# hostlists made of the characters that matter: brackets, ranges, separators, non-ASCII digits, newlines
BACKEND_SPECS = SPECIAL_STRINGS | st.text(alphabet="rgw01289[]-.,: _\n²７", max_size=24) | VALUES


@settings(max_examples=300, deadline=None)
@given(st.lists(BACKEND_SPECS, min_size=1, max_size=3))
def test_any_backend_list_is_settings_or_inventory_error(specs: list[Any]) -> None:
    check_any(site_data(ober_backends=specs, ober_check_dns=False))
    check_any(site_data(ober_backends=specs))


# ---- issue 11: required keys, plain strings, hostlists in whitelists


@pytest.mark.parametrize("key", ["ober_local_asn", "ober_peers", "ober_vips", "ober_backends"])
def test_a_missing_required_key_says_required_not_set(key: str) -> None:
    data = site_data()
    del data[key]
    assert f"{HOST}: {key}: required, not set" in problems_of(data)


def test_vips_as_one_string_are_the_vips_as_a_list() -> None:
    """`pyinfra ... --data ober_vips=203.0.113.10/32` hands over a string, as it does for ober_backends."""
    assert settings_of(site_data(ober_vips=VIP_V4)).vips == settings_of(site_data(ober_vips=[VIP_V4])).vips
    two = settings_of(site_data(ober_vips=f"{VIP_V4}, 203.0.113.11/32")).vips
    assert [vip.prefix for vip in two] == [VIP_V4, "203.0.113.11/32"]


def test_whitelists_take_slurm_hostlists_resolved_on_the_controller() -> None:
    asked: list[str] = []
    addresses = {f"weka{i:03d}": [f"198.51.100.{i}"] for i in range(1, 4)} | {
        "weka003": ["198.51.100.3", "2001:db8::3"]
    }

    def dns(name: str) -> list[str]:
        asked.append(name)
        return addresses.get(name, resolver(name))

    node = node_settings(
        HOST,
        site_data(ober_whitelist_frontend="weka[001-003],203.0.113.0/24", ober_whitelist_routers=["198.51.100.0/24"]),
        resolver=dns,
    )
    assert node.whitelist_frontend == (
        "203.0.113.0/24",
        "198.51.100.1/32",
        "198.51.100.2/32",
        "198.51.100.3/32",
        "2001:db8::3/128",
    )
    assert sorted(set(asked) & set(addresses)) == ["weka001", "weka002", "weka003"]


def test_a_hostlist_name_that_does_not_resolve_is_named() -> None:
    problems = problems_of(site_data(ober_whitelist_backend=["rgw[01-03].internal"]))
    line = line_for(problems, "ober_whitelist_backend[0]", "'rgw[01-03].internal'")
    assert "'rgw03.internal', which does not resolve" in line
    assert not any("rgw01.internal'," in other for other in problems)  # rgw01 and rgw02 resolve (support.DNS)


def test_a_fleet_asks_the_resolver_once_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in resolver(host)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    hosts = [(f"n{i}", site_data(ober_router_id=f"198.51.100.{10 + i}"), None) for i in range(5)]
    assert len(validate_inventory(hosts)) == 5
    assert sorted(asked) == ["rgw01.internal", "rgw02.internal"]


# ---- the metrics frontend (ober_metrics_bind, ober_metrics_allow)


@pytest.mark.parametrize(
    ("key", "value", "value_text", "why"),
    [
        ("ober_metrics_bind", "198.51.100.11", "'198.51.100.11'", "address:port"),
        ("ober_metrics_bind", "198.51.100.300:9101", "'198.51.100.300:9101'", "not an IP address"),
        ("ober_metrics_bind", "metrics.example:9101", "'metrics.example:9101'", "not an IP address"),
        ("ober_metrics_bind", "2001:db8::11:9101", "'2001:db8::11:9101'", "[address]:port"),
        ("ober_metrics_bind", "[198.51.100.11]:9101", "'[198.51.100.11]:9101'", "[address]:port"),
        ("ober_metrics_bind", "198.51.100.11:65536", "'198.51.100.11:65536'", "out of range"),
        ("ober_metrics_bind", "198.51.100.11:8404", "'198.51.100.11:8404'", "HAProxy's stats"),
        ("ober_metrics_bind", "198.51.100.11:443", "'198.51.100.11:443'", "the S3 frontend"),
        ("ober_metrics_bind", 9101, "9101", "address:port"),
        ("ober_metrics_allow", ["198.51.100.1/24"], "'198.51.100.1/24'", "prefix without host bits"),
        ("ober_metrics_allow", [], "[]", "no Prometheus could scrape"),
    ],
)
def test_metrics_keys_are_named_with_host_key_and_value(key: str, value: Any, value_text: str, why: str) -> None:
    problems = problems_of(site_data(**{key: value}))
    named = "ober_metrics_allow[0]" if value == ["198.51.100.1/24"] else key
    assert why in line_for(problems, named, value_text)


def test_metrics_default_to_loopback_only_and_take_both_families() -> None:
    node = settings_of(site_data())
    assert node.metrics_bind is None and node.metrics_allow == ("127.0.0.0/8", "::1/128")
    node = settings_of(
        site_data(ober_metrics_bind="[2001:db8:100::11]:9101", ober_metrics_allow="198.51.100.0/24, 2001:db8::/32")
    )
    assert node.metrics_bind == "[2001:db8:100::11]:9101"
    assert node.metrics_allow == ("198.51.100.0/24", "2001:db8::/32")
    assert settings_of(site_data(ober_metrics_bind="0.0.0.0:9101")).metrics_bind == "0.0.0.0:9101"
