"""Config loading and validation: every bad value is a ConfigError that names the key and the value."""

from __future__ import annotations

import datetime
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ober_health.config import (
    BgpConfig,
    Config,
    ConfigError,
    HealthConfig,
    PeerConfig,
    VipConfig,
    load_config,
    parse_config,
)

GOOD = """\
[health]
interval = 0.5
timeout = 1.0
rise = 4
fall = 3
haproxy_url = "http://127.0.0.1:8404/health"
stats_socket = "/run/haproxy/ober.sock"
maintenance_file = "/etc/ober/maintenance"
drain_file = "/run/ober/drain"
state_file = "/run/ober/state.json"
shutdown_ack_timeout = 1.2

[[vip]]
prefix = "203.0.113.10/32"
backend = "be_rgw"
min_up = 2
med = 100
communities = ["65000:100", "65000:200"]

[[vip]]
prefix = "2001:db8:203::10/128"
"""


def vip(**values: Any) -> dict[str, Any]:
    return {"prefix": "203.0.113.10/32", **values}


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.errors, "a ConfigError must say what is wrong"
    assert str(caught.value) == "\n".join(caught.value.errors)
    return caught.value.errors


def only_error(raw: dict[str, Any]) -> str:
    errors = errors_of(raw)
    assert len(errors) == 1, errors
    return errors[0]


def test_good_file_loads_every_value(tmp_path: Path) -> None:
    path = tmp_path / "health.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.health == HealthConfig(
        interval=0.5,
        timeout=1.0,
        rise=4,
        fall=3,
        haproxy_url="http://127.0.0.1:8404/health",
        stats_socket="/run/haproxy/ober.sock",
        maintenance_file="/etc/ober/maintenance",
        drain_file="/run/ober/drain",
        state_file="/run/ober/state.json",
        shutdown_ack_timeout=1.2,
    )
    assert config.vips == (
        VipConfig("203.0.113.10/32", backend="be_rgw", min_up=2, med=100, communities=("65000:100", "65000:200")),
        VipConfig("2001:db8:203::10/128"),
    )
    assert not config.vips[0].is_ipv6 and config.vips[1].is_ipv6


def test_defaults_when_only_a_vip_is_given() -> None:
    config = parse_config({"vip": [vip()]})
    assert config == Config(health=HealthConfig(), vips=(VipConfig("203.0.113.10/32"),))
    assert isinstance(config.health.interval, float) and isinstance(config.health.rise, int)


def test_the_event_path_is_on_unless_switched_off() -> None:
    assert parse_config({"vip": [vip()]}).health.watch_haproxy is True
    assert parse_config({"health": {"watch_haproxy": False}, "vip": [vip()]}).health.watch_haproxy is False


def test_integers_are_accepted_for_seconds() -> None:
    config = parse_config({"health": {"interval": 1, "timeout": 2}, "vip": [vip()]})
    assert config.health.interval == 1.0 and isinstance(config.health.interval, float)


def test_ipv6_prefix_is_normalised() -> None:
    config = parse_config({"vip": [vip(prefix="2001:DB8:203:0::10/128")]})
    assert config.vips[0].prefix == "2001:db8:203::10/128"


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("interval", 0, "0"),
        ("interval", -1.5, "-1.5"),
        ("interval", 61, "61"),
        ("interval", math.nan, "nan"),
        ("interval", math.inf, "inf"),
        ("interval", "1s", "'1s'"),
        ("interval", True, "True"),
        ("timeout", 0, "0"),
        ("timeout", -0.5, "-0.5"),
        ("timeout", [1], "[1]"),
        ("rise", 0, "0"),
        ("rise", -3, "-3"),
        ("rise", 2.5, "2.5"),
        ("rise", 3.0, "3.0"),
        ("rise", "3", "'3'"),
        ("rise", 1001, "1001"),
        ("fall", 0, "0"),
        ("fall", 1.5, "1.5"),
        ("fall", False, "False"),
        ("shutdown_ack_timeout", 2, "2"),
        ("shutdown_ack_timeout", -0.1, "-0.1"),
        ("haproxy_url", "127.0.0.1:8404/health", "'127.0.0.1:8404/health'"),
        ("haproxy_url", "ftp://127.0.0.1/health", "'ftp://127.0.0.1/health'"),
        ("haproxy_url", "http://", "'http://'"),
        ("haproxy_url", "", "''"),
        ("haproxy_url", "http://127.0.0.1:8404/health\n", "'http://127.0.0.1:8404/health\\n'"),
        ("haproxy_url", 8404, "8404"),
        ("stats_socket", "", "''"),
        ("maintenance_file", 1, "1"),
        ("drain_file", ["/run/ober/drain"], "['/run/ober/drain']"),
        ("state_file", {"path": "x"}, "{'path': 'x'}"),
        ("status_listen", "0.0.0.0:8405", "'0.0.0.0:8405'"),
        ("status_listen", "198.51.100.11:8405", "'198.51.100.11:8405'"),
        ("status_listen", "127.0.0.1", "'127.0.0.1'"),
        ("status_listen", "127.0.0.1:0", "'127.0.0.1:0'"),
        ("status_listen", "127.0.0.1:65536", "'127.0.0.1:65536'"),
        ("status_listen", "localhost:8405", "'localhost:8405'"),
        ("status_listen", "::1:8405", "'::1:8405'"),
        ("status_listen", 8405, "8405"),
        ("watch_haproxy", "yes", "'yes'"),
        ("watch_haproxy", 1, "1"),
    ],
)
def test_bad_health_value_names_key_and_value(key: str, value: object, shown: str) -> None:
    error = only_error({"health": {key: value}, "vip": [vip()]})
    assert error.startswith(f"health.{key}: {shown} "), error


def test_timeout_far_above_interval_is_refused() -> None:
    error = only_error({"health": {"interval": 0.1, "timeout": 5}, "vip": [vip()]})
    assert error.startswith("health.timeout: 5.0 "), error
    assert "health.interval (0.1)" in error
    parse_config({"health": {"interval": 0.5, "timeout": 5}, "vip": [vip()]})  # 10x is the limit, allowed


def test_unknown_health_key_is_named_with_its_value() -> None:
    error = only_error({"health": {"intervall": 0.2}, "vip": [vip()]})
    assert error.startswith("health.intervall: unknown key (value 0.2; known: interval, timeout, rise, fall")


def test_health_that_is_not_a_table() -> None:
    assert only_error({"health": 5, "vip": [vip()]}) == "health: 5 is not a table"


@pytest.mark.parametrize(
    ("values", "key", "shown"),
    [
        ({"prefix": "203.0.113.300/32"}, "prefix", "'203.0.113.300/32'"),
        ({"prefix": "203.0.113.10/24"}, "prefix", "did you mean 203.0.113.0/24?"),  # host bits set
        ({"prefix": "203.0.113.0/24"}, "prefix", "is not one address"),  # HAProxy binds one address
        ({"prefix": "2001:db8::/48"}, "prefix", "a /128 (IPv6)"),
        ({"prefix": "203.0.113.10"}, "prefix", "'203.0.113.10'"),  # no length: say what is meant
        ({"prefix": "203.0.113.10/33"}, "prefix", "'203.0.113.10/33'"),
        ({"prefix": "2001:db8::g/128"}, "prefix", "'2001:db8::g/128'"),
        ({"prefix": "2001:db8::10/64"}, "prefix", "'2001:db8::10/64'"),
        ({"prefix": "fe80::1%eth0/128"}, "prefix", "'fe80::1%eth0/128'"),  # ExaBGP has no scoped routes
        ({"prefix": "vip.example.org/32"}, "prefix", "'vip.example.org/32'"),
        ({"prefix": ""}, "prefix", "''"),
        ({"prefix": 203}, "prefix", "203"),
        ({"backend": "be rgw"}, "backend", "'be rgw'"),
        ({"backend": ""}, "backend", "''"),
        ({"backend": 7}, "backend", "7"),
        ({"backend": "be_rgw\n"}, "backend", "'be_rgw\\n'"),
        ({"backend": "be", "min_up": -1}, "min_up", "-1"),
        ({"backend": "be", "min_up": 0}, "min_up", "0"),
        ({"backend": "be", "min_up": 1.5}, "min_up", "1.5"),
        ({"backend": "be", "min_up": "2"}, "min_up", "'2'"),
        ({"min_up": 2}, "min_up", "2"),  # nothing to count without a backend
        ({"med": -1}, "med", "-1"),
        ({"med": 4294967296}, "med", "4294967296"),
        ({"med": "100"}, "med", "'100'"),
        ({"med": 1.5}, "med", "1.5"),
        ({"med": True}, "med", "True"),
        ({"communities": ["65000:65536"]}, "communities", "'65000:65536'"),
        ({"communities": ["65536:1"]}, "communities", "'65536:1'"),
        ({"communities": ["65000"]}, "communities", "'65000'"),
        ({"communities": ["65000:100:1"]}, "communities", "'65000:100:1'"),
        ({"communities": ["no-export"]}, "communities", "'no-export'"),
        ({"communities": [65000]}, "communities", "65000"),
        ({"communities": "65000:100"}, "communities", "'65000:100'"),
        # a line break in a community would split the announce line sent to ExaBGP in two
        ({"communities": ["65000:100\n"]}, "communities", "'65000:100\\n'"),
        ({"communities": ["65000:100\nwithdraw route 203.0.113.20/32 next-hop self"]}, "communities", "'65000:100\\n"),
        # digits of other scripts match Python's `\d`; the documented format is ASCII ASN:VALUE
        ({"communities": ["٦٥٠٠٠:١٠٠"]}, "communities", "'٦٥٠٠٠:١٠٠'"),
        ({"colour": "blue"}, "colour", "'blue'"),
    ],
)
def test_bad_vip_value_names_key_and_value(values: dict[str, Any], key: str, shown: str) -> None:
    raw = {"prefix": "203.0.113.10/32", **values}
    errors = errors_of({"vip": [vip(prefix="198.51.100.1/32"), raw]})
    assert any(error.startswith(f"vip[1].{key}") and shown in error for error in errors), errors


def test_range_in_the_message_is_written_as_the_operator_would() -> None:
    errors = errors_of({"vip": [vip(med=4294967296)], "health": {"rise": 0, "interval": 0}})
    assert "vip[0].med: 4294967296 is out of range (0..4294967295)" in errors, errors
    assert "health.rise: 0 is out of range (1..1000)" in errors, errors
    assert "health.interval: 0 is out of range (0.01..60)" in errors, errors


def test_vip_values_at_the_edge_of_their_range_are_accepted() -> None:
    config = parse_config(
        {
            "vip": [
                vip(med=0, communities=["0:0", "65535:65535"], backend="be-1.x:y", min_up=1),
                vip(prefix="203.0.113.11/32", med=4294967295),
                vip(prefix="2001:db8::ffff/128"),
            ]
        }
    )
    assert [v.med for v in config.vips] == [0, 4294967295, None]


def test_missing_prefix() -> None:
    assert only_error({"vip": [{"backend": "be"}]}) == "vip[0].prefix: required, not set"


def test_no_vip_at_all() -> None:
    assert "no [[vip]]" in only_error({"health": {}})
    assert "no [[vip]]" in only_error({"vip": []})


def test_vip_that_is_not_an_array_of_tables() -> None:
    error = only_error({"vip": {"prefix": "203.0.113.10/32"}})
    assert error.startswith("vip: {'prefix': '203.0.113.10/32'} is not an array of tables"), error
    assert only_error({"vip": ["203.0.113.10/32"]}) == "vip[0]: '203.0.113.10/32' is not a table"


def test_unknown_section_is_named() -> None:
    assert only_error({"vip": [vip()], "vips": []}) == "vips: unknown section (value [])"


def test_duplicate_prefix_names_the_second_entry() -> None:
    error = only_error({"vip": [vip(), vip(prefix="198.51.100.1/32"), vip()]})
    assert error == "vip[2].prefix: '203.0.113.10/32' is listed twice"


def test_duplicate_prefix_index_counts_invalid_entries_too() -> None:
    # vip[0] is broken; the duplicate is vip[2], whatever vip[0] looks like
    errors = errors_of({"vip": [vip(med=-1), vip(prefix="198.51.100.1/32"), vip(prefix="198.51.100.1/32")]})
    assert "vip[2].prefix: '198.51.100.1/32' is listed twice" in errors, errors


def test_duplicate_prefix_written_differently() -> None:
    error = only_error({"vip": [vip(prefix="2001:db8::10/128"), vip(prefix="2001:DB8:0::10/128")]})
    assert error.startswith("vip[1].prefix: ") and "listed twice" in error, error


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "health": {"interval": 0, "rise": 0},
            "vip": [vip(prefix="203.0.113.300/32", med=-1), vip(communities=["x"])],
        }
    )
    keys = sorted(error.split(":")[0] for error in errors)
    assert keys == ["health.interval", "health.rise", "vip[0].med", "vip[0].prefix", "vip[1].communities[0]"], errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and "cannot read" in str(caught.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_invalid_toml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "health.toml"
    path.write_text("[health]\ninterval = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "not valid TOML" in str(caught.value) and "line 2" in str(caught.value)


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "health.toml"
    path.write_bytes(b'[[vip]]\nprefix = "203.0.113.10/32"\n# \xff\xfe latin-1 comment: caf\xe9\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


# ---- properties: nothing a file can contain makes the loader raise anything but ConfigError

_toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["203.0.113.10/32", "2001:db8::1/128", "be_rgw", "65000:100", "http://127.0.0.1:1/h", "/tmp/x"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
_toml_values = st.recursive(
    _toml_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_health_keys = st.sampled_from(
    [
        "interval",
        "timeout",
        "rise",
        "fall",
        "haproxy_url",
        "stats_socket",
        "maintenance_file",
        "drain_file",
        "state_file",
        "shutdown_ack_timeout",
        "status_listen",
        "watch_haproxy",
        "other",
    ]
)
_vip_keys = st.sampled_from(["prefix", "backend", "min_up", "med", "communities", "other"])
_documents = st.fixed_dictionaries(
    {},
    optional={
        "health": st.dictionaries(_health_keys, _toml_values, max_size=6) | _toml_values,
        "vip": st.lists(st.dictionaries(_vip_keys, _toml_values, max_size=6) | _toml_values, max_size=4) | _toml_values,
        "bgp": st.dictionaries(st.sampled_from(["local_asn", "router_id", "hold_time", "x"]), _toml_values)
        | _toml_values,
        "peer": st.lists(
            st.dictionaries(st.sampled_from(["address", "asn", "local_address", "x"]), _toml_values, max_size=4)
            | _toml_values,
            max_size=3,
        )
        | _toml_values,
        "extra": _toml_values,
    },
)


@given(_documents)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_property_any_document_is_a_config_or_a_config_error(raw: dict[str, Any]) -> None:
    try:
        config = parse_config(raw)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(error, str) and error for error in exc.errors)
        return
    assert config.vips  # a config without VIPs is never accepted
    for item in config.vips:
        # whatever was accepted can be written to ExaBGP as one line
        line = item.prefix + " " + " ".join(item.communities)
        assert line.isascii() and line.isprintable(), line
    for peer in config.peers:
        assert peer.address.isascii() and peer.address.isprintable() and " " not in peer.address


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_property_any_text_file_loads_or_is_a_config_error(text: str) -> None:
    _load_or_config_error(text.encode("utf-8", errors="surrogatepass"))


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_property_any_bytes_load_or_are_a_config_error(data: bytes) -> None:
    _load_or_config_error(b'[[vip]]\nprefix = "203.0.113.10/32"\n' + data)


def _load_or_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "health.toml"
        path.write_bytes(data)
        try:
            config = load_config(path)
        except ConfigError as exc:
            assert exc.errors, data
        else:
            assert config.vips, data


def test_datetime_values_are_config_errors_not_crashes() -> None:
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    error = only_error({"health": {"interval": stamp}, "vip": [vip()]})
    assert error.startswith("health.interval: datetime.datetime(2024"), error


# ---- [bgp] and [[peer]]: the node knows its sessions (the deploy renders them from the inventory)

BGP = {"local_asn": 65001, "router_id": "198.51.100.11", "hold_time": 9}


def test_bgp_and_peers_load() -> None:
    config = parse_config(
        {
            "bgp": BGP,
            "peer": [
                {"address": "198.51.100.1", "asn": 65000, "local_address": "198.51.100.11"},
                {"address": "2001:DB8:100::1", "asn": 4200000000},
            ],
            "vip": [vip(), vip(prefix="2001:db8:203::10/128")],
        }
    )
    assert config.bgp == BgpConfig(local_asn=65001, router_id="198.51.100.11", hold_time=9)
    assert config.peers == (
        PeerConfig("198.51.100.1", 65000, "198.51.100.11"),
        PeerConfig("2001:db8:100::1", 4200000000),  # normalised, as ExaBGP writes it back
    )
    assert config.peers_of(6) == (config.peers[1],) and config.hold_time == 9


def test_without_bgp_the_hold_time_is_the_deploys_default() -> None:
    config = parse_config({"vip": [vip()]})
    assert config.bgp is None and config.peers == () and config.hold_time == 9
    assert parse_config({"bgp": {**BGP, "hold_time": 3}, "vip": [vip()]}).hold_time == 3
    assert parse_config({"bgp": {"local_asn": 1, "router_id": "192.0.2.1"}, "vip": [vip()]}).hold_time == 9


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"bgp": {**BGP, "local_asn": 0}}, "bgp.local_asn: 0 is out of range (1..4294967295)"),
        ({"bgp": {**BGP, "local_asn": "65001"}}, "bgp.local_asn: '65001' is not a number"),
        ({"bgp": {"router_id": "198.51.100.11"}}, "bgp.local_asn: required, not set"),
        ({"bgp": {**BGP, "router_id": "2001:db8::1"}}, "bgp.router_id: '2001:db8::1' is not an IPv4 address"),
        ({"bgp": {**BGP, "router_id": "node1"}}, "bgp.router_id: 'node1' is not an IP address"),
        ({"bgp": {**BGP, "hold_time": 2}}, "bgp.hold_time: 2 is out of range (3..65535)"),
        ({"bgp": {**BGP, "hold": 9}}, "bgp.hold: unknown key (value 9; known: local_asn, router_id, hold_time)"),
        ({"bgp": [1]}, "bgp: [1] is not a table"),
        (
            {"bgp": BGP, "peer": [{"address": "198.51.100.1", "asn": 0}]},
            "peer[0].asn: 0 is out of range (1..4294967295)",
        ),
        ({"bgp": BGP, "peer": [{"asn": 65000}]}, "peer[0].address: required, not set"),
        (
            {"bgp": BGP, "peer": [{"address": "198.51.100.0/24", "asn": 1}]},
            "peer[0].address: '198.51.100.0/24' is not an IP address",
        ),
        (
            {"bgp": BGP, "peer": [{"address": "fe80::1%eth0", "asn": 1}]},
            "peer[0].address: 'fe80::1%eth0' is not an IP address",
        ),
        (
            {"bgp": BGP, "peer": [{"address": "198.51.100.1", "asn": 1, "local_address": "2001:db8::11"}]},
            "peer[0].local_address: '2001:db8::11' is not of the family of address '198.51.100.1'",
        ),
        (
            {"bgp": BGP, "peer": [{"address": "198.51.100.1", "asn": 1, "bfd": True}]},
            "peer[0].bfd: unknown key (value True; known: address, asn, local_address)",
        ),
        (
            {"bgp": BGP, "peer": {"address": "198.51.100.1"}},
            "peer: {'address': '198.51.100.1'} is not an array of tables",
        ),
        ({"peer": [{"address": "198.51.100.1", "asn": 1}]}, "peer: [[peer]] given without a [bgp] table"),
        (
            {"bgp": BGP, "peer": [{"address": "198.51.100.1", "asn": 1}, {"address": "198.51.100.1", "asn": 2}]},
            "peer[1].address: '198.51.100.1' is listed twice",
        ),
    ],
)
def test_bad_bgp_or_peer_names_key_and_value(raw: dict[str, Any], expected: str) -> None:
    error = only_error({**raw, "vip": [vip()]})
    assert error.startswith(expected), error


def test_a_vip_needs_a_peer_of_its_family() -> None:
    error = only_error(
        {"bgp": BGP, "peer": [{"address": "198.51.100.1", "asn": 1}], "vip": [vip(prefix="2001:db8:203::10/128")]}
    )
    assert error == (
        "vip[0].prefix: '2001:db8:203::10/128' is IPv6 but no [[peer]] is: an IPv6 VIP needs an IPv6 BGP session"
    )


@pytest.mark.parametrize("listen", ["127.0.0.1:8405", "127.0.0.53:1", "[::1]:8405", ""])
def test_status_listen_on_loopback_or_off(listen: str) -> None:
    config = parse_config({"health": {"status_listen": listen}, "vip": [vip()]})
    assert config.health.status_listen == listen
