"""ober_health.bgptest without a router: the messages against ExaBGP's own parser (round trips), the
kernel's TCP table, the choice of peers, and the exchange against a scripted BGP speaker on loopback for
the answers real routers do not give on demand (silence after connect, garbage, a wrong message).
The real routers (BIRD, FRR) are in tests/lab/test_bgp_test.py."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exabgp.bgp.message import KeepAlive, Message, Notification, Open
from exabgp.bgp.message.open import ASN, Capabilities, HoldTime, RouterID, Version
from exabgp.bgp.message.open.capability import Capability
from exabgp.bgp.message.open.capability.asn4 import ASN4
from exabgp.bgp.message.open.capability.mp import MultiProtocol
from exabgp.protocol.family import AFI, SAFI

from ober_health import bgptest
from ober_health.bgptest import Outcome, PeerTarget
from ober_health.config import BgpConfig, Config, PeerConfig
from tests.conftest import record_figure

TARGET = PeerTarget(
    "198.51.100.1", asn=65000, local_asn=65001, router_id="198.51.100.11", local_address="198.51.100.11"
)


def parse(raw: bytes) -> object:
    """ExaBGP's own reading of one whole message: header checked, body to its class."""
    assert raw[:16] == Message.MARKER
    assert struct.unpack("!H", raw[16:18])[0] == len(raw)
    return Message.unpack(raw[18], raw[19:], None, None)


def router_open_bytes(asn: int = 65000, router_id: str = "198.51.100.1", hold: int = 3, v6: bool = False) -> bytes:
    capabilities = Capabilities()
    families = MultiProtocol()
    families.append((AFI.ipv6 if v6 else AFI.ipv4, SAFI.unicast))
    capabilities[Capability.CODE.MULTIPROTOCOL] = families
    capabilities[Capability.CODE.FOUR_BYTES_ASN] = ASN4(asn)
    return bytes(Open(Version(4), ASN(asn), HoldTime(hold), RouterID(router_id), capabilities).message())


# ---- messages: round trips through ExaBGP's parser


def test_open_round_trips_through_exabgps_parser() -> None:
    message = parse(bgptest.build_open(TARGET))
    assert isinstance(message, Open)
    assert (message.version, int(message.asn), int(message.hold_time)) == (4, 65001, 9)
    assert str(message.router_id) == "198.51.100.11"
    assert list(message.capabilities[Capability.CODE.MULTIPROTOCOL]) == [(AFI.ipv4, SAFI.unicast)]
    assert int(message.capabilities[Capability.CODE.FOUR_BYTES_ASN]) == 65001


def test_open_to_an_ipv6_peer_offers_ipv6_unicast_only() -> None:
    target = PeerTarget("2001:db8:100::1", 65000, 65001, "198.51.100.11", "2001:db8:100::11", hold_time=30)
    message = parse(bgptest.build_open(target))
    assert list(message.capabilities[Capability.CODE.MULTIPROTOCOL]) == [(AFI.ipv6, SAFI.unicast)]  # type: ignore[attr-defined]
    assert int(message.hold_time) == 30  # type: ignore[attr-defined]


def test_four_byte_local_asn_goes_in_the_capability_and_as_trans_in_the_header() -> None:
    target = PeerTarget("198.51.100.1", 65000, 4200000001, "198.51.100.11")
    raw = bgptest.build_open(target)
    assert struct.unpack("!H", raw[20:22])[0] == 23456  # AS_TRANS on the wire (RFC 6793)
    message = parse(raw)
    assert int(message.capabilities[Capability.CODE.FOUR_BYTES_ASN]) == 4200000001  # type: ignore[attr-defined]
    assert bgptest.router_open(message).asn == 4200000001


def test_keepalive_round_trips() -> None:
    assert isinstance(parse(bgptest.build_keepalive()), KeepAlive)


def test_shutdown_notification_carries_the_rfc8203_message() -> None:
    message = parse(bgptest.build_notification(6, 2, bgptest.SHUTDOWN_MESSAGE))
    assert isinstance(message, Notification)
    assert (message.code, message.subcode) == (6, 2)
    assert str(message) == f'Cease / Administrative Shutdown / Shutdown Communication: "{bgptest.SHUTDOWN_MESSAGE}"'


@pytest.mark.parametrize(
    ("code", "subcode", "words"),
    [
        (2, 2, "OPEN message error / Bad Peer AS"),
        (6, 7, "Cease / Connection Collision Resolution"),
        (2, 6, "OPEN message error / Unacceptable Hold Time"),
        (4, 0, "Hold timer expired / Unspecific"),
    ],
)
def test_notification_words_come_from_exabgps_tables(code: int, subcode: int, words: str) -> None:
    assert bgptest.notification_words(code, subcode) == words
    message = parse(bgptest.build_notification(code, subcode, ""))
    assert (message.code, message.subcode) == (code, subcode)  # type: ignore[attr-defined]


def test_router_open_in_words() -> None:
    opened = bgptest.router_open(parse(router_open_bytes(asn=65000, hold=3)))
    assert opened == bgptest.RouterOpen(65000, "198.51.100.1", 3, ("multiprotocol ipv4/unicast", "asn4"))


# ---- the router's OPEN judged by ExaBGP's Negotiated.validate


def test_an_open_from_the_expected_asn_is_accepted() -> None:
    sent = parse(bgptest.build_open(TARGET))
    assert bgptest.open_problem(TARGET, sent, parse(router_open_bytes(65000))) is None


def test_an_open_from_another_asn_is_bad_peer_as() -> None:
    sent = parse(bgptest.build_open(TARGET))
    problem = bgptest.open_problem(TARGET, sent, parse(router_open_bytes(65010)))
    assert problem is not None
    assert problem[:2] == (2, 2)
    assert "65010" in problem[2] and "65000" in problem[2]


def test_an_open_with_router_id_zero_is_bad_bgp_identifier() -> None:
    sent = parse(bgptest.build_open(TARGET))
    problem = bgptest.open_problem(TARGET, sent, parse(router_open_bytes(65000, router_id="0.0.0.0")))
    assert problem is not None and problem[:2] == (2, 3)


# ---- the kernel's TCP table


def _hex_v4(address: str, port: int) -> str:
    return f"{struct.unpack('=I', socket.inet_pton(socket.AF_INET, address))[0]:08X}:{port:04X}"


def _hex_v6(address: str, port: int) -> str:
    raw = socket.inet_pton(socket.AF_INET6, address)
    words = "".join(f"{struct.unpack('=I', raw[i : i + 4])[0]:08X}" for i in range(0, 16, 4))
    return f"{words}:{port:04X}"


def _table(tmp_path: Path, name: str, rows: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / name
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    lines = [header]
    for index, (local, remote, state) in enumerate(rows):
        lines.append(f"   {index}: {local} {remote} {state} 00000000:00000000 00:00000000 00000000     0        0 1")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_established_sessions_reads_ipv4_and_ipv6_rows(tmp_path: Path) -> None:
    v4 = _table(
        tmp_path,
        "tcp",
        [
            (_hex_v4("198.51.100.11", 40000), _hex_v4("198.51.100.1", 179), "01"),  # ExaBGP's session
            (_hex_v4("198.51.100.11", 40001), _hex_v4("198.51.100.1", 179), "02"),  # SYN_SENT: not a session
            (_hex_v4("198.51.100.11", 40002), _hex_v4("198.51.100.2", 179), "01"),  # another router
            (_hex_v4("198.51.100.11", 40003), _hex_v4("198.51.100.1", 80), "01"),  # not BGP
        ],
    )
    v6 = _table(tmp_path, "tcp6", [(_hex_v6("2001:db8:100::11", 41000), _hex_v6("2001:db8:100::1", 179), "01")])
    tables = (v4, v6)
    assert bgptest.established_sessions("198.51.100.1", tables=tables) == (
        bgptest.TcpSession("198.51.100.11", 40000, "198.51.100.1", 179),
    )
    assert bgptest.established_sessions("198.51.100.1", local="198.51.100.12", tables=tables) == ()
    found = bgptest.established_sessions("2001:db8:100::1", local="2001:db8:100::11", tables=tables)
    assert [str(s) for s in found] == ["[2001:db8:100::11]:41000 -> [2001:db8:100::1]:179"]


def test_a_session_the_router_opened_counts_too(tmp_path: Path) -> None:
    table = _table(tmp_path, "tcp", [(_hex_v4("198.51.100.11", 179), _hex_v4("198.51.100.1", 50000), "01")])
    assert len(bgptest.established_sessions("198.51.100.1", tables=(table,))) == 1


def test_established_sessions_reads_this_kernels_table() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                found = bgptest.established_sessions("127.0.0.1", port)
                assert bgptest.TcpSession("127.0.0.1", client.getsockname()[1], "127.0.0.1", port) in found


# ---- which peers


def _config(peers: list[dict[str, Any]]) -> Config:
    bgp = BgpConfig(local_asn=65001, router_id="198.51.100.11", hold_time=3)
    return Config(bgp=bgp, peers=tuple(PeerConfig(**peer) for peer in peers))


def test_targets_from_health_toml_peers() -> None:
    config = _config(
        [
            {"address": "198.51.100.1", "asn": 65000, "local_address": "198.51.100.11"},
            {"address": "2001:db8:100::1", "asn": 65000, "local_address": None},
        ]
    )
    targets = bgptest.targets_from(config)
    assert targets == [
        PeerTarget("198.51.100.1", 65000, 65001, "198.51.100.11", "198.51.100.11", hold_time=3),
        PeerTarget("2001:db8:100::1", 65000, 65001, "198.51.100.11", None, hold_time=3),
    ]
    assert bgptest.targets_from(config, peer="2001:db8:100:0::1") == targets[1:]
    assert bgptest.targets_from(config, peer="198.51.100.1", asn=65010)[0].asn == 65010


def test_targets_from_the_command_line_alone() -> None:
    targets = bgptest.targets_from(Config(), peer="198.51.100.1", asn=65000, local_asn=65001, router_id="198.51.100.11")
    assert targets == [PeerTarget("198.51.100.1", 65000, 65001, "198.51.100.11")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "health.toml has no [bgp] local_asn; give --local-asn"),
        ({"local_asn": 65001}, "health.toml has no [bgp] router_id; give --router-id"),
        ({"local_asn": 65001, "router_id": "198.51.100.11"}, "no peers: health.toml has no [[peer]]"),
        ({"local_asn": 0, "router_id": "198.51.100.11"}, "--local-asn: 0 is not an ASN (1..4294967295)"),
        ({"local_asn": 65001, "router_id": "2001:db8::1"}, "--router-id: '2001:db8::1' is not an IPv4 address"),
        ({"local_asn": 65001, "router_id": "198.51.100.11", "peer": "198.51.100.1"}, "give its ASN with --asn"),
        ({"local_asn": 65001, "router_id": "198.51.100.11", "peer": "router1", "asn": 1}, "--peer: 'router1' is not"),
        ({"local_asn": 65001, "router_id": "198.51.100.11", "asn": 65000}, "give it with --peer ADDRESS"),
        (
            {
                "local_asn": 65001,
                "router_id": "198.51.100.11",
                "peer": "2001:db8::1",
                "asn": 1,
                "local_address": "198.51.100.11",
            },
            "--local-address: 198.51.100.11 is not of the same family as the peer 2001:db8::1",
        ),
    ],
)
def test_bad_or_missing_settings_name_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        bgptest.targets_from(Config(), **options)


def test_timeout_bounds() -> None:
    assert bgptest.check_timeout(2.5) == 2.5
    for bad in (0.0, -1.0, 61.0):
        with pytest.raises(ValueError, match="--timeout"):
            bgptest.check_timeout(bad)


# ---- the exchange, against a scripted speaker on loopback

Script = Callable[[socket.socket], None]
HOLD = threading.Event()  # a script that must keep its connection open waits on this; teardown sets it


@pytest.fixture
def speaker() -> Iterator[Callable[[Script], PeerTarget]]:
    """A one-connection BGP speaker on 127.0.0.1 that runs `script` on the accepted socket."""
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def start(script: Script) -> PeerTarget:
        server = socket.create_server(("127.0.0.1", 0))

        def serve() -> None:
            with server:
                server.settimeout(5)
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    script(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((server, thread))
        port = server.getsockname()[1]
        return PeerTarget("127.0.0.1", 65000, 65001, "198.51.100.11", "127.0.0.1", port=port)

    HOLD.clear()
    yield start
    HOLD.set()
    for server, thread in servers:
        server.close()
        thread.join(timeout=5)


def read_one(conn: socket.socket) -> object:
    header = b""
    while len(header) < 19:
        header += conn.recv(19 - len(header))
    length = struct.unpack("!H", header[16:18])[0]
    body = b""
    while len(body) < length - 19:
        body += conn.recv(length - 19 - len(body))
    return Message.unpack(header[18], body, None, None)


def test_a_well_behaved_speaker_is_established_and_closed_with_a_cease(
    speaker: Callable[[Script], PeerTarget],
) -> None:
    received: list[object] = []

    def script(conn: socket.socket) -> None:
        received.append(read_one(conn))
        conn.sendall(router_open_bytes(65000, hold=3))
        received.append(read_one(conn))
        conn.sendall(bgptest.build_keepalive())
        received.append(read_one(conn))

    result = bgptest.probe_peer(speaker(script), timeout=3)
    assert result.outcome is Outcome.ESTABLISHED, result.line()
    assert result.ok
    assert result.router_open == bgptest.RouterOpen(65000, "198.51.100.1", 3, ("multiprotocol ipv4/unicast", "asn4"))
    assert [type(m).__name__ for m in received] == ["Open", "KeepAlive", "Notification"]
    assert (received[2].code, received[2].subcode) == (6, 2)  # type: ignore[attr-defined]
    assert "established: router id 198.51.100.1, AS65000, hold time 3s" in result.line()


def test_a_speaker_from_another_asn_gets_bad_peer_as_from_us(speaker: Callable[[Script], PeerTarget]) -> None:
    answers: list[object] = []

    def script(conn: socket.socket) -> None:
        read_one(conn)
        conn.sendall(router_open_bytes(65010))
        answers.append(read_one(conn))

    result = bgptest.probe_peer(speaker(script), timeout=3)
    assert result.outcome is Outcome.MISMATCH
    assert "ExaBGP refuses with OPEN message error / Bad Peer AS" in result.detail
    assert "ASN in OPEN (65010) did not match ASN expected (65000)" in result.detail
    assert (answers[0].code, answers[0].subcode) == (2, 2)  # type: ignore[attr-defined]


def test_a_notification_is_reported_in_words(speaker: Callable[[Script], PeerTarget]) -> None:
    def script(conn: socket.socket) -> None:
        read_one(conn)
        conn.sendall(bgptest.build_notification(2, 6, ""))

    result = bgptest.probe_peer(speaker(script), timeout=3)
    assert result.outcome is Outcome.NOTIFICATION
    assert result.notification == (2, 6)
    assert result.detail == "the router sent NOTIFICATION OPEN message error / Unacceptable Hold Time"


def test_silence_after_connect_times_out_within_the_bound(speaker: Callable[[Script], PeerTarget]) -> None:
    def script(conn: socket.socket) -> None:
        HOLD.wait(5)

    started = time.monotonic()
    result = bgptest.probe_peer(speaker(script), timeout=0.5)
    took = time.monotonic() - started
    record_figure("test-bgp: silent speaker, bound 0.5 s", took)
    assert took < 2.5, "the bound did not hold: the speaker stays silent for 5 s"
    assert result.outcome is Outcome.TIMED_OUT
    assert result.detail == "TCP connected but the router sent no BGP answer within 0.5s"


def test_not_bgp_is_an_error(speaker: Callable[[Script], PeerTarget]) -> None:
    def script(conn: socket.socket) -> None:
        read_one(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n" + b"\0" * 19)

    result = bgptest.probe_peer(speaker(script), timeout=3)
    assert result.outcome is Outcome.ERROR
    assert "does not start with the BGP marker" in result.detail


def test_a_close_without_a_word(speaker: Callable[[Script], PeerTarget]) -> None:
    result = bgptest.probe_peer(speaker(lambda conn: None), timeout=3)
    assert result.outcome is Outcome.CLOSED
    assert not result.ok


def test_nothing_listening_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    result = bgptest.probe_peer(PeerTarget("127.0.0.1", 65000, 65001, "198.51.100.11", port=port), timeout=2)
    assert result.outcome is Outcome.REFUSED
    assert result.detail.startswith(f"connection refused (RST): nothing listens on 127.0.0.1:{port}")


def test_a_local_address_not_on_this_node_is_unreachable() -> None:
    # 203.0.113.0/24 is documentation space: no address of it is on this machine's loopback namespace
    result = bgptest.probe_peer(PeerTarget("127.0.0.1", 65000, 65001, "198.51.100.11", "203.0.113.99", port=9), 2)
    assert result.outcome is Outcome.UNREACHABLE
    assert result.detail == "cannot bind the local address 203.0.113.99: it is not an address of this node"


def test_a_live_session_is_not_probed_without_force(speaker: Callable[[Script], PeerTarget]) -> None:
    connections: list[object] = []

    def script(conn: socket.socket) -> None:
        connections.append(conn)
        HOLD.wait(5)

    target = speaker(script)
    with socket.create_connection(("127.0.0.1", target.port), timeout=2) as live:  # stands for ExaBGP's session
        time.sleep(0.1)
        result = bgptest.probe_peer(target, timeout=2)
        assert result.outcome is Outcome.LIVE and not result.probed and result.ok
        ours = bgptest.TcpSession("127.0.0.1", live.getsockname()[1], "127.0.0.1", target.port)
        assert ours in result.live_before  # (on loopback the speaker's end of it is listed too)
        assert result.detail.startswith("not probed: this node's session")
        assert f"127.0.0.1:{live.getsockname()[1]} -> 127.0.0.1:{target.port}" in result.detail
    assert len(connections) == 1  # the speaker saw only the live connection
