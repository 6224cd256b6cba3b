"""ExaBGP's text API: the exact lines we write, and every line ExaBGP (or anything else) may write to us."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ober_health.config import PeerConfig, VipConfig
from ober_health.exabgp import (
    Event,
    EventKind,
    PeerSnapshot,
    announce_line,
    notification_words,
    parse_line,
    withdraw_line,
    withdraw_prefix_line,
)

# ---- out: announce / withdraw


def test_announce_line_with_med_and_community() -> None:
    vip = VipConfig("203.0.113.10/32", med=100, communities=("65000:100",))
    assert announce_line(vip) == "announce route 203.0.113.10/32 next-hop self med 100 community [65000:100]"


def test_announce_line_with_several_communities() -> None:
    vip = VipConfig("203.0.113.10/32", med=100, communities=("65000:100", "65000:200"))
    assert announce_line(vip) == "announce route 203.0.113.10/32 next-hop self med 100 community [65000:100 65000:200]"


def test_announce_line_without_attributes() -> None:
    assert announce_line(VipConfig("203.0.113.10/32")) == "announce route 203.0.113.10/32 next-hop self"


def test_med_zero_is_announced_not_dropped() -> None:
    assert announce_line(VipConfig("203.0.113.10/32", med=0)) == "announce route 203.0.113.10/32 next-hop self med 0"


def test_community_without_med() -> None:
    vip = VipConfig("203.0.113.10/32", communities=("65000:1",))
    assert announce_line(vip) == "announce route 203.0.113.10/32 next-hop self community [65000:1]"


def test_withdraw_line_carries_no_attributes() -> None:
    vip = VipConfig("203.0.113.10/32", med=100, communities=("65000:100",))
    assert withdraw_line(vip) == "withdraw route 203.0.113.10/32 next-hop self"


def test_ipv6_lines() -> None:
    vip = VipConfig("2001:db8:203::10/128", med=50, communities=("65000:600",))
    assert announce_line(vip) == "announce route 2001:db8:203::10/128 next-hop self med 50 community [65000:600]"
    assert withdraw_line(vip) == "withdraw route 2001:db8:203::10/128 next-hop self"


def test_selector_names_each_peer_of_the_family() -> None:
    peers = (PeerConfig("198.51.100.1", 65000), PeerConfig("198.51.100.2", 65000))
    vip = VipConfig("203.0.113.10/32", med=100)
    assert announce_line(vip, peers) == (
        "neighbor 198.51.100.1 , neighbor 198.51.100.2 announce route 203.0.113.10/32 next-hop self med 100"
    )
    assert withdraw_line(vip, peers[:1]) == "neighbor 198.51.100.1 withdraw route 203.0.113.10/32 next-hop self"
    assert withdraw_prefix_line("203.0.113.99/32", ["198.51.100.2"]) == (
        "neighbor 198.51.100.2 withdraw route 203.0.113.99/32 next-hop self"
    )


def _exabgp_peer_name(address: str, local: str) -> str:
    """A peer's key in ExaBGP's reactor, as `neighbor.name()` makes it (seen in its logs)."""
    rest = "local-as 65001 peer-as 65000 router-id 198.51.100.11 family-allowed in-open"
    return f"neighbor {address} local-ip {local} {rest}"


def test_exabgp_sends_a_selected_line_to_exactly_the_named_peers() -> None:
    """ExaBGP's own selector code (reactor/api/command/limit.py), on the peer keys its reactor uses: an IPv4
    route goes to the IPv4 sessions only, so ExaBGP never logs "route family not configured on neighbor"."""
    from exabgp.reactor.api.command.limit import extract_neighbors, match_neighbors

    v4 = [_exabgp_peer_name("198.51.100.1", "198.51.100.11"), _exabgp_peer_name("198.51.100.2", "198.51.100.11")]
    v6 = [_exabgp_peer_name("2001:db8::1", "2001:db8::11")]
    peers = (PeerConfig("198.51.100.1", 65000), PeerConfig("198.51.100.2", 65000))
    vip = VipConfig("203.0.113.10/32", med=100, communities=("65000:100",))
    descriptions, command = extract_neighbors(announce_line(vip, peers))
    assert match_neighbors([*v4, *v6], descriptions) == v4
    assert _exabgp_routes(command) == [_expected(vip)]
    descriptions, command = extract_neighbors(
        withdraw_line(VipConfig("2001:db8:203::10/128"), (PeerConfig("2001:db8::1", 1),))
    )
    assert match_neighbors([*v4, *v6], descriptions) == v6
    assert command == "withdraw route 2001:db8:203::10/128 next-hop self"


def test_lines_are_single_lines_without_newline() -> None:
    # main.emit adds the one "\n"; a line must not bring its own
    vip = VipConfig("203.0.113.10/32", med=1, communities=("1:1",))
    assert "\n" not in announce_line(vip) + withdraw_line(vip)


# ---- out, judged by ExaBGP's own parser (the version we pin): the line means the route we meant


def _exabgp_routes(line: str) -> list[str]:
    from exabgp.logger import log
    from exabgp.reactor.api import API
    from exabgp.reactor.api.command.limit import extract_neighbors

    log.silence()  # the parser logs through a logger that only the ExaBGP daemon sets up
    _, command = extract_neighbors(line)
    routes = [change.extensive() for change in API(None).api_route(command)]
    # ExaBGP writes an IPv4-mapped IPv6 address its own way (::ffff:0.0.0.1): compare addresses, not spellings
    return [" ".join([str(ipaddress.ip_network(route.split()[0])), *route.split()[1:]]) for route in routes]


def _expected(vip: VipConfig) -> str:
    text = f"{vip.prefix} next-hop self"
    if vip.med is not None:
        text += f" med {vip.med}"
    # ExaBGP keeps communities sorted by value, and drops the brackets around a single one
    communities = sorted(vip.communities, key=lambda c: tuple(int(part) for part in c.split(":")))
    if len(communities) == 1:
        text += f" community {communities[0]}"
    elif communities:
        text += f" community [ {' '.join(communities)} ]"
    return text


@pytest.mark.parametrize(
    "vip",
    [
        VipConfig("203.0.113.10/32", med=100, communities=("65000:100",)),
        VipConfig("203.0.113.10/32", med=100, communities=("65000:100", "65000:200")),
        VipConfig("203.0.113.0/24"),
        VipConfig("2001:db8:203::10/128", med=0),
    ],
)
def test_exabgp_parses_our_lines_into_the_route_we_meant(vip: VipConfig) -> None:
    assert _exabgp_routes(announce_line(vip)) == [_expected(vip)]
    assert _exabgp_routes(withdraw_line(vip)) == [f"{vip.prefix} next-hop self"]


_communities = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(lambda pair: f"{pair[0]}:{pair[1]}")
_prefixes = st.one_of(
    st.ip_addresses(v=4).map(lambda address: f"{address}/32"),
    st.ip_addresses(v=6).map(lambda address: f"{address}/128"),
    st.tuples(st.ip_addresses(v=4), st.integers(8, 32)).map(
        lambda pair: str(ipaddress.ip_network(f"{pair[0]}/{pair[1]}", strict=False))
    ),
)
_vips = st.builds(
    VipConfig,
    prefix=_prefixes,
    med=st.none() | st.integers(0, 4294967295),
    communities=st.lists(_communities, max_size=3, unique=True).map(tuple),
)


@given(_vips)
@settings(max_examples=150, deadline=None)
def test_property_exabgp_reads_back_every_valid_vip(vip: VipConfig) -> None:
    assert _exabgp_routes(announce_line(vip)) == [_expected(vip)]
    assert _exabgp_routes(withdraw_line(vip)) == [f"{vip.prefix} next-hop self"]


# ---- in: what ExaBGP writes to our stdin


@pytest.mark.parametrize(
    ("line", "event"),
    [
        ("done", Event(EventKind.DONE)),
        ("done\n", Event(EventKind.DONE)),
        ("  done \r\n", Event(EventKind.DONE)),
        ("error", Event(EventKind.ERROR, "error")),
        ("error\n", Event(EventKind.ERROR, "error")),
        ("error could not parse route", Event(EventKind.ERROR, "error could not parse route")),
        ("neighbor 198.51.100.1 up", Event(EventKind.NEIGHBOR_UP, "neighbor 198.51.100.1 up", "198.51.100.1")),
        (
            "neighbor 198.51.100.1 down - peer reset the session\n",
            Event(
                EventKind.NEIGHBOR_DOWN,
                "neighbor 198.51.100.1 down - peer reset the session",
                "198.51.100.1",
                "peer reset the session",
            ),
        ),
        ("neighbor 2001:db8::1 up", Event(EventKind.NEIGHBOR_UP, "neighbor 2001:db8::1 up", "2001:db8::1")),
        (
            "neighbor 198.51.100.1 connected",
            Event(EventKind.NEIGHBOR_CONNECTED, "neighbor 198.51.100.1 connected", "198.51.100.1"),
        ),
        ("shutdown", Event(EventKind.SHUTDOWN, "shutdown")),
        ("shutdown 1234 1", Event(EventKind.SHUTDOWN, "shutdown 1234 1")),
        ("neighbor", Event(EventKind.OTHER, "neighbor")),
        ("neighbor 198.51.100.1", Event(EventKind.OTHER, "neighbor 198.51.100.1")),
        ("donee", Event(EventKind.OTHER, "donee")),
        ("errors", Event(EventKind.OTHER, "errors")),
        ("DONE", Event(EventKind.OTHER, "DONE")),
        ("hello world", Event(EventKind.OTHER, "hello world")),
        ("\x00\x01\x02", Event(EventKind.OTHER, "\x00\x01\x02")),
        ("{not json", Event(EventKind.OTHER, "{not json")),
        ("{}", Event(EventKind.OTHER, "{}")),
        ('{"type": "state", "neighbor": 5}', Event(EventKind.OTHER, '{"type": "state", "neighbor": 5}')),
    ],
)
def test_parse_line(line: str, event: Event) -> None:
    assert parse_line(line) == event


@pytest.mark.parametrize("line", ["", "\n", "   ", " \t \r\n"])
def test_blank_lines_are_nothing(line: str) -> None:
    assert parse_line(line) is None


def _exabgp_json_state(peer: str, state: str) -> str:
    """A state message as ExaBGP 5's JSON encoder writes it (`encoder json`)."""
    head = '{ "exabgp": "5.0.0", "time": 1700000000.0, "host" : "node1", "pid" : 10, "ppid" : 1, "counter": 1, '
    address = '"address": { "local": "198.51.100.11", "peer": "' + peer + '" }'
    asn = '"asn": { "local": 65001, "peer": 65000 }'
    return f'{head}"type": "state", "neighbor": {{ {address}, {asn} , "state": "{state}" }} }}'


def test_json_neighbor_up_and_down() -> None:
    up = _exabgp_json_state("198.51.100.1", "up")
    down = _exabgp_json_state("198.51.100.1", "down")
    assert parse_line(up) == Event(EventKind.NEIGHBOR_UP, up, "198.51.100.1")
    assert parse_line(down + "\n") == Event(EventKind.NEIGHBOR_DOWN, down, "198.51.100.1")
    connected = _exabgp_json_state("198.51.100.1", "connected")
    assert parse_line(connected) == Event(EventKind.NEIGHBOR_CONNECTED, connected, "198.51.100.1")


def test_json_state_from_exabgps_own_encoder() -> None:
    from exabgp.reactor.api.response.json import JSON

    class Neighbor(dict[str, object]):
        uid = "1"  # the encoder counts messages per neighbor uid

    neighbor = Neighbor(
        {
            "local-address": "198.51.100.11",
            "peer-address": "198.51.100.1",
            "local-as": 65001,
            "peer-as": 65000,
            "router-id": "198.51.100.11",
        }
    )
    encoder = JSON("5.0.15")
    up = parse_line(encoder.up(neighbor))
    down = parse_line(encoder.down(neighbor, "hold timer expired"))
    shutdown = parse_line(encoder.shutdown())
    assert up is not None and (up.kind, up.neighbor) == (EventKind.NEIGHBOR_UP, "198.51.100.1")
    assert down is not None and (down.kind, down.neighbor) == (EventKind.NEIGHBOR_DOWN, "198.51.100.1")
    assert shutdown is not None and shutdown.kind is EventKind.SHUTDOWN


def test_text_events_from_exabgps_own_encoder() -> None:
    from exabgp.reactor.api.response.text import Text

    neighbor = {"peer-address": "198.51.100.1"}
    encoder = Text("5.0.15")
    up = parse_line(encoder.up(neighbor))
    down = parse_line(encoder.down(neighbor, "peer reset"))
    shutdown = parse_line(encoder.shutdown())
    assert up is not None and (up.kind, up.neighbor) == (EventKind.NEIGHBOR_UP, "198.51.100.1")
    assert down is not None and (down.kind, down.neighbor) == (EventKind.NEIGHBOR_DOWN, "198.51.100.1")
    assert shutdown is not None and shutdown.kind is EventKind.SHUTDOWN


def test_json_shutdown_notification() -> None:
    line = '{ "exabgp": "5.0.0", "time": 1.0, "type": "notification", "notification": "shutdown" }'
    assert parse_line(line) == Event(EventKind.SHUTDOWN, line)


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "state", "neighbor": {"address": "x", "state": "up"}}',
        '{"type": "state", "neighbor": {"address": {"peer": null}, "state": "down"}}',
        '{"type": "state", "neighbor": {"address": [], "state": []}}',
        "[1, 2, 3]",
        '{"a": ' + "[" * 100_000,  # deeper than the JSON decoder's recursion limit
        "{" + '"a": {' * 100_000,
        "{" * 100_000,
    ],
)
def test_odd_json_never_raises(line: str) -> None:
    event = parse_line(line)
    assert event is not None and event.kind in (
        EventKind.NEIGHBOR_UP,
        EventKind.NEIGHBOR_DOWN,
        EventKind.NEIGHBOR_TABLE,
        EventKind.OTHER,
    )
    assert all(peer.address for peer in event.peers)


@given(st.text())
@settings(max_examples=500)
def test_property_any_text_line_is_classified_never_raises(line: str) -> None:
    event = parse_line(line)
    assert event is None or isinstance(event.kind, EventKind)
    assert (event is None) == (line.strip() == "")


_json_keys = st.sampled_from(["type", "neighbor", "address", "peer", "state", "notification", "x"])
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(["state", "up", "down", "shutdown"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_json_keys, inner, max_size=4),
    max_leaves=15,
)


@given(_json_values)
@settings(max_examples=300)
def test_property_any_json_line_never_raises(value: object) -> None:
    event = parse_line(json.dumps(value))
    assert event is not None and isinstance(event.kind, EventKind)


# ---- in: replies to our `show` commands, and why a session failed


def test_adj_rib_out_lines_as_exabgp_5_writes_them() -> None:
    """`show adj-rib out` on ExaBGP 5.0.15 (seen against BIRD): `<peer> <afi> <safi> <prefix> next-hop <nh>`."""
    event = parse_line("198.51.100.1 ipv4 unicast 203.0.113.10/32 next-hop 198.51.100.11")
    assert event is not None and event.kind is EventKind.RIB_ROUTE
    assert (event.neighbor, event.prefix) == ("198.51.100.1", "203.0.113.10/32")
    event = parse_line("2001:db8:100::1 ipv6 unicast 2001:db8:203::10/128 next-hop 2001:db8:100::11")
    assert event is not None and (event.neighbor, event.prefix) == ("2001:db8:100::1", "2001:db8:203::10/128")


def test_neighbor_table_from_exabgps_own_encoding() -> None:
    """`show neighbor json` is `json.dumps` of NeighborTemplate.as_dict (reactor/api/command/neighbor.py)."""
    from exabgp.bgp.neighbor import NeighborTemplate

    def answer(peer: str, state: str, duration: int, peer_hold: int | None) -> dict[str, object]:
        return {
            "down": 30,
            "duration": duration,
            "local-address": "198.51.100.11",
            "peer-address": peer,
            "local-as": 65001,
            "peer-as": 65000,
            "local-id": "198.51.100.11",
            "peer-id": None,
            "local-hold": 9,
            "peer-hold": peer_hold,
            "state": state,
            "capabilities": {},
            "families": {},
            "messages": {"open": (1, 1), "total": (1, 1)},
        }

    table = [
        NeighborTemplate.as_dict(answer("198.51.100.1", "ESTABLISHED", 12, 3)),
        NeighborTemplate.as_dict(answer("2001:db8:100::1", "ACTIVE", 0, None)),
    ]
    event = parse_line(json.dumps(table))
    assert event is not None and event.kind is EventKind.NEIGHBOR_TABLE
    assert event.peers == (
        PeerSnapshot("198.51.100.1", "ESTABLISHED", 12, 3),
        PeerSnapshot("2001:db8:100::1", "ACTIVE", 0, None),
    )
    # ExaBGP says "down" in its first second of a session (duration 0): the fsm is what counts
    first_second = parse_line(json.dumps([NeighborTemplate.as_dict(answer("198.51.100.1", "ESTABLISHED", 0, 3))]))
    assert first_second is not None and first_second.peers[0].established


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "neighbor 198.51.100.1 down - notification received (2,2)",
            "peer sent NOTIFICATION: OPEN message error / Bad Peer AS",
        ),
        (
            "neighbor 198.51.100.1 down - notification sent (4,0)",
            "ExaBGP sent NOTIFICATION: Hold timer expired / Unspecific",
        ),
        (
            "neighbor 198.51.100.1 down - notification received (6,2)",
            "peer sent NOTIFICATION: Cease / Administrative Shutdown",
        ),
        ("neighbor 198.51.100.1 down - closing connection", "connection closed (TCP)"),
    ],
)
def test_down_reasons_in_words(line: str, reason: str) -> None:
    event = parse_line(line)
    assert event is not None and event.kind is EventKind.NEIGHBOR_DOWN and event.reason == reason


def test_a_received_notification_from_exabgps_own_encoder_in_words() -> None:
    """The line ExaBGP writes with `receive { parsed; notification; }`, for the NOTIFICATIONs BIRD sends: a
    wrong peer AS (BIRD adds the AS it got as data: binary, not shown) and `birdc disable <p> "message"`."""
    from exabgp.bgp.message.notification import Notification
    from exabgp.reactor.api.response.text import Text

    encoder = Text("5.0.15")
    neighbor = {"peer-address": "198.51.100.1"}
    bad_as = Notification.unpack_message(bytes([2, 2]) + (65001).to_bytes(4, "big"))
    line = encoder.notification(neighbor, "receive", bad_as, None, b"", b"")
    event = parse_line(line)
    assert event is not None and event.kind is EventKind.NOTIFICATION and event.code == (2, 2)
    assert event.reason == "peer sent NOTIFICATION: OPEN message error / Bad Peer AS"
    text = b"planned maintenance"
    shutdown = Notification.unpack_message(bytes([6, 2, len(text)]) + text)
    event = parse_line(encoder.notification(neighbor, "receive", shutdown, None, b"", b""))
    assert event is not None and event.direction == "receive"
    assert (
        event.reason
        == 'peer sent NOTIFICATION: Cease / Administrative Shutdown / Shutdown Communication: "planned maintenance"'
    )


def test_notification_words_come_from_exabgps_classes() -> None:
    from exabgp.bgp.message.notification import Notification

    for (code, subcode), name in Notification._str_subcode.items():
        assert notification_words(code, subcode) == f"{Notification._str_code.get(code, 'unknown error')} / {name}"
    assert notification_words(9, 9) == "unknown error / unknow reason"  # ExaBGP's spelling, not a crash
