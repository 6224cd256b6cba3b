"""One BGP OPEN exchange with one router, to tell an operator in words whether the peering comes up.

`ober test-bgp` exists because ExaBGP only logs "connected" or "down": whether the router refuses this
node (wrong ASN, no neighbor for this address), is not there (RST), or cannot be reached (silence) is
in the router's log, not on the node. So this module does what ExaBGP's first milliseconds do, once,
and reports what the router answered: it connects to peer:179 from the configured local address, sends
the OPEN ExaBGP would send (local ASN, router id, hold time, the 4-byte ASN capability and the
multiprotocol capability of the peer's family), reads the router's answer within a bound, and closes
politely (NOTIFICATION Cease / Administrative Shutdown after an established exchange, so the router
logs who closed and why instead of a hold-timer expiry).

Every message is built and parsed by ExaBGP's own classes (`exabgp.bgp.message`), and the router's OPEN
is judged by ExaBGP's own `Negotiated.validate`, so the test accepts and refuses what ExaBGP would.

It never starts, stops or signals ExaBGP or HAProxy. On a live node ExaBGP already holds a session from
the same address to the same router, and a second connection is a collision (RFC 4271 section 6.8);
see `probe_peer` for what BIRD 2 and FRR 8 do with it and why such a peer is not probed by default.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from exabgp.bgp.message import KeepAlive, Message, Notification, Notify, Open
from exabgp.bgp.message.open import ASN, Capabilities, HoldTime, RouterID, Version
from exabgp.bgp.message.open.asn import AS_TRANS
from exabgp.bgp.message.open.capability import Capability
from exabgp.bgp.message.open.capability.asn4 import ASN4
from exabgp.bgp.message.open.capability.mp import MultiProtocol
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.protocol.family import AFI, SAFI

from ober_health.config import DEFAULT_HOLD_TIME, Config, PeerConfig

BGP_PORT = 179
DEFAULT_TIMEOUT = 5.0
MAX_MESSAGE = 4096  # RFC 4271 4.1; extended messages are not offered, so a router may not send more
# RFC 8203 shutdown communication: the router's log says who closed the session and why
SHUTDOWN_MESSAGE = "ober test-bgp: OPEN exchange tested, closing"
# A connection refused by the router closes within milliseconds; one still ESTABLISHED this much later
# is a session, not ExaBGP caught in the middle of a refused OPEN exchange.
LIVE_CONFIRM_SECONDS = 0.25
# After a --force probe of a live peer: time for the router's FIN/RST to reach our kernel if it dropped
# the live session (both BIRD and FRR drop it at accept time, when they drop it at all).
LIVE_SETTLE_SECONDS = 0.25
TCP_ESTABLISHED = "01"  # `st` column of /proc/net/tcp{,6}
PROC_TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
OPEN_ERROR, BAD_PEER_AS = 2, 2
FSM_ERROR = 5
CEASE, ADMINISTRATIVE_SHUTDOWN, COLLISION = 6, 2, 7


class Outcome(StrEnum):
    """What the router did with our OPEN; the value is the word the operator reads."""

    ESTABLISHED = "established"  # OPEN + KEEPALIVE received, and the router's OPEN is what the config expects
    LIVE = "live"  # ExaBGP's own session holds the peering (not probed, or the router turned the probe away)
    NOTIFICATION = "notification"  # the router sent a NOTIFICATION (e.g. OPEN message error / Bad Peer AS)
    MISMATCH = "mismatch"  # the router's OPEN is one ExaBGP refuses (e.g. another ASN than configured)
    CLOSED = "closed"  # the router accepted TCP and closed it without a word
    REFUSED = "refused"  # TCP RST to our SYN: nothing listens on peer:179, or a filter rejects us
    TIMED_OUT = "timed out"  # no answer within the bound (filtered, blackholed, router gone)
    UNREACHABLE = "unreachable"  # no route, or the local address is not on this node
    ERROR = "error"  # the router sent something that is not BGP as RFC 4271 has it


OK_OUTCOMES = frozenset({Outcome.ESTABLISHED, Outcome.LIVE})


@dataclass(frozen=True)
class PeerTarget:
    """One configured peering, as health.toml's [bgp] and [[peer]] describe it (INTERFACES.md section 1)."""

    address: str
    asn: int
    local_asn: int
    router_id: str
    local_address: str | None = None
    hold_time: int = DEFAULT_HOLD_TIME
    port: int = BGP_PORT

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.address).version


@dataclass(frozen=True)
class RouterOpen:
    """What the router said about itself in its OPEN."""

    asn: int
    router_id: str
    hold_time: int
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class TcpSession:
    """An ESTABLISHED TCP connection between this node and peer:179, from the kernel's table."""

    local: str
    local_port: int
    peer: str
    peer_port: int

    def __str__(self) -> str:
        return f"{hostport(self.local, self.local_port)} -> {hostport(self.peer, self.peer_port)}"


@dataclass(frozen=True)
class PeerResult:
    """The outcome of one probe, with what an operator (or `--json`) needs to act on it."""

    target: PeerTarget
    outcome: Outcome
    detail: str  # the router's answer in words
    seconds: float
    router_open: RouterOpen | None = None
    notification: tuple[int, int] | None = None
    live_before: tuple[TcpSession, ...] = ()
    live_after: tuple[TcpSession, ...] = ()
    probed: bool = True  # False when a live session made us keep off (no --force)
    local_port: int | None = None  # our source port, to find the exchange in the router's log or a capture

    @property
    def live_lost(self) -> tuple[TcpSession, ...]:
        """Live sessions that were ESTABLISHED before the probe and are not after it."""
        if not self.probed:
            return ()
        return tuple(s for s in self.live_before if s not in self.live_after)

    @property
    def ok(self) -> bool:
        """The peering is up (by this probe or by ExaBGP's session) and the probe disturbed nothing."""
        return self.outcome in OK_OUTCOMES and not self.live_lost

    def line(self) -> str:
        """One line for the operator: which peer, from where, what happened, how long it took."""
        source = self.target.local_address or "the kernel's choice of address"
        text = f"{self.target.address} (AS{self.target.asn}) from {source}: {self.outcome.value}: {self.detail}"
        if self.live_lost:
            text += f"; WARNING: the live session {', '.join(map(str, self.live_lost))} is gone since the probe"
        elif self.probed and self.live_before:
            text += f"; the live session {', '.join(map(str, self.live_before))} is still established"
        return f"{text} ({self.seconds:.3f}s)"

    def as_dict(self) -> dict[str, Any]:
        """The result for `--json`: the same facts as `line()`, one key each."""
        opened = self.router_open
        return {
            "peer": self.target.address,
            "asn": self.target.asn,
            "local_address": self.target.local_address,
            "local_asn": self.target.local_asn,
            "router_id": self.target.router_id,
            "outcome": self.outcome.value,
            "ok": self.ok,
            "detail": self.detail,
            "probed": self.probed,
            "seconds": round(self.seconds, 4),
            "local_port": self.local_port,
            "notification": list(self.notification) if self.notification else None,
            "router_open": None
            if opened is None
            else {
                "asn": opened.asn,
                "router_id": opened.router_id,
                "hold_time": opened.hold_time,
                "capabilities": list(opened.capabilities),
            },
            "live_sessions_before": [str(s) for s in self.live_before],
            "live_sessions_after": [str(s) for s in self.live_after],
            "live_sessions_lost": [str(s) for s in self.live_lost],
        }


# ---- messages: built and parsed by ExaBGP


def build_open(target: PeerTarget) -> bytes:
    """The OPEN ExaBGP sends for this peering: the 4-byte ASN capability (AS_TRANS in the 2-byte field
    above 65535) and multiprotocol unicast of the peer's family, as the deploy's `family { ipvN unicast; }`."""
    capabilities = Capabilities()
    families = MultiProtocol()
    families.append((AFI.ipv6 if target.family == 6 else AFI.ipv4, SAFI.unicast))
    capabilities[Capability.CODE.MULTIPROTOCOL] = families
    capabilities[Capability.CODE.FOUR_BYTES_ASN] = ASN4(target.local_asn)
    message = Open(
        Version(Version.BGP_4),
        ASN(target.local_asn),
        HoldTime(target.hold_time),
        RouterID(target.router_id),
        capabilities,
    )
    return bytes(message.message())


def build_keepalive() -> bytes:
    return bytes(KeepAlive().message())


def build_notification(code: int, subcode: int, text: str | None = None) -> bytes:
    """A NOTIFICATION as ExaBGP sends it; for Cease / Administrative Shutdown `text` is the RFC 8203 message."""
    return bytes(Notify(code, subcode, text).message())


def decode(kind: int, body: bytes) -> Any:
    """The OPEN, KEEPALIVE or NOTIFICATION object in one message body, by ExaBGP's parser for `kind`.

    Raises ExaBGP's Notify when the body is malformed (the NOTIFICATION ExaBGP would answer with)."""
    return Message.unpack(kind, body, None, None)


def notification_words(code: int, subcode: int, data: bytes = b"") -> str:
    """'OPEN message error / Bad Peer AS' from ExaBGP's own tables, plus the router's data when readable."""
    return str(Notification(code, subcode, data))


def router_open(message: Any) -> RouterOpen:
    """The parts of the router's OPEN an operator compares with the router's config."""
    capabilities = message.capabilities
    asn = int(message.asn)
    if asn == int(AS_TRANS) and Capability.CODE.FOUR_BYTES_ASN in capabilities:
        asn = int(capabilities[Capability.CODE.FOUR_BYTES_ASN])
    names = tuple(_capability_words(code, value) for code, value in sorted(capabilities.items()))
    return RouterOpen(asn=asn, router_id=str(message.router_id), hold_time=int(message.hold_time), capabilities=names)


def _capability_words(code: int, value: Any) -> str:
    if code == Capability.CODE.MULTIPROTOCOL:
        return "multiprotocol " + " ".join(f"{afi}/{safi}" for afi, safi in value)
    return str(Capability.CODE.name(code) or f"capability-{code:#x}")


def open_problem(target: PeerTarget, sent: Any, received: Any) -> tuple[int, int, str] | None:
    """What ExaBGP would refuse in the router's OPEN, as (code, subcode, why); None when acceptable.

    ExaBGP's own `Negotiated.validate` judges, with the settings this node's ExaBGP runs with."""
    neighbor = {
        "capability": {"aigp": False},
        "peer-as": ASN(target.asn),
        "local-as": ASN(target.local_asn),
        "router-id": RouterID(target.router_id),
    }
    negotiated = Negotiated(neighbor)
    negotiated.sent(sent)
    negotiated.received(received)
    problem = negotiated.validate(neighbor)
    if problem is None:
        return None
    code, subcode, why = problem
    return int(code), int(subcode), str(why)


# ---- live sessions: read from the kernel, not assumed


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _proc_address(text: str) -> tuple[str, int]:
    """/proc/net/tcp{,6} 'ADDR:PORT' (ADDR as host-order 32-bit words in hex) to ('198.51.100.1', 179)."""
    hex_address, hex_port = text.split(":")
    raw = bytes.fromhex(hex_address)
    words = (struct.unpack(">I", raw[i : i + 4])[0] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address), int(hex_port, 16)


def established_sessions(
    peer: str,
    port: int = BGP_PORT,
    local: str | None = None,
    tables: Sequence[Path] = PROC_TCP_TABLES,
) -> tuple[TcpSession, ...]:
    """ESTABLISHED TCP connections in this network namespace between this node and peer:port (either
    side may have connected), from `local` if given.

    On a node that is ExaBGP's session to the router: the kernel's table is the truth, whatever ExaBGP's
    log or config say."""
    want_peer = ipaddress.ip_address(peer)
    want_local = ipaddress.ip_address(local) if local else None
    found = []
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 4 or fields[3] != TCP_ESTABLISHED:
                continue
            local_address, local_port = _proc_address(fields[1])
            remote_address, remote_port = _proc_address(fields[2])
            if ipaddress.ip_address(remote_address) != want_peer or port not in (remote_port, local_port):
                continue
            if want_local is not None and ipaddress.ip_address(local_address) != want_local:
                continue
            found.append(TcpSession(local_address, local_port, remote_address, remote_port))
    return tuple(found)


def confirmed_live_sessions(target: PeerTarget, wait: float = LIVE_CONFIRM_SECONDS) -> tuple[TcpSession, ...]:
    """The sessions to `target` that are ESTABLISHED now and still `wait` seconds later.

    An ExaBGP whose OPEN the router refuses is ESTABLISHED for a millisecond per retry: seen once, it
    is not a session, and must not make the probe keep off or count as up."""
    first = established_sessions(target.address, target.port, target.local_address)
    if not first:
        return ()
    time.sleep(wait)
    again = established_sessions(target.address, target.port, target.local_address)
    return tuple(s for s in first if s in again)


# ---- the exchange


class _Closed(Exception):
    """The router closed the connection (FIN) before a whole message arrived."""


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise _Closed
        data += chunk
    return data


def read_message(sock: socket.socket, deadline: float) -> Any:
    """One whole BGP message from the router, framed by ExaBGP's header rules and parsed by ExaBGP.

    Raises TimeoutError past `deadline`, _Closed on FIN, OSError on RST, Notify on a malformed message."""
    header = _recv_exactly(sock, Message.HEADER_LEN, deadline)
    if not header.startswith(Message.MARKER):
        raise Notify(1, 1, "the message does not start with the BGP marker")
    length = struct.unpack("!H", header[16:18])[0]
    kind = header[18]
    valid = Message.Length.get(kind, lambda n: n >= Message.HEADER_LEN)
    if length > MAX_MESSAGE or not valid(length):
        raise Notify(1, 2, struct.pack("!H", length))
    body = _recv_exactly(sock, length - Message.HEADER_LEN, deadline) if length > Message.HEADER_LEN else b""
    return decode(kind, body)


def _connect(target: PeerTarget, deadline: float) -> socket.socket:
    family = socket.AF_INET6 if target.family == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if target.local_address:
            sock.bind((target.local_address, 0))
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.connect((target.address, target.port))
    except BaseException:
        sock.close()
        raise
    return sock


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Best effort: the router may already have closed; the outcome is decided by then."""
    with contextlib.suppress(OSError):
        sock.settimeout(0.5)
        sock.sendall(data)


Finish = Callable[..., PeerResult]


def probe_peer(target: PeerTarget, timeout: float = DEFAULT_TIMEOUT, *, force: bool = False) -> PeerResult:
    """Exchange OPENs with one router within `timeout` seconds and say in words what it answered.

    Never raises for anything the network or the router does: every failure is an Outcome.

    A live session (ExaBGP's, ESTABLISHED in the kernel's table between the same addresses) is not
    probed unless `force`: the second connection is what a router with graceful restart negotiated on
    the live session takes as "the peer restarted", and both BIRD 2 and FRR 8 then drop the LIVE session
    (BIRD even accepts the probe instead: its routes leave the FIB when the probe closes). ober keeps
    graceful restart off, and without it both routers turn the probe away and leave the live session
    alone (RFC 4271 section 6.8): BIRD closes the new connection without a word while ExaBGP's connection
    holds its incoming slot, FRR answers Cease / Connection Collision Resolution. But the node cannot see
    what the live session negotiated, so keeping off is the default and the live session is the answer.
    With `force` the probe is sent and the live session is checked again afterwards: a lost one is
    reported and makes the result not ok.
    """
    started = time.monotonic()
    deadline = started + timeout
    live_before = confirmed_live_sessions(target)

    def finish(outcome: Outcome, detail: str, *, probed: bool = True, **extra: Any) -> PeerResult:
        if live_before and probed:
            time.sleep(LIVE_SETTLE_SECONDS)
        live_after = established_sessions(target.address, target.port, target.local_address)
        return PeerResult(
            target=target,
            outcome=outcome,
            detail=detail,
            seconds=time.monotonic() - started,
            live_before=live_before,
            live_after=live_after,
            probed=probed,
            **extra,
        )

    if live_before and not force:
        sessions = ", ".join(map(str, live_before))
        verb = "is" if len(live_before) == 1 else "are"
        return finish(
            Outcome.LIVE,
            f"not probed: this node's session {sessions} {verb} established (ExaBGP's; its BGP state is in"
            " `ober status`); a second connection from this address makes a router with graceful restart"
            " negotiated on that session drop it (BIRD and FRR do), so the live session is the test;"
            " --force probes anyway",
            probed=False,
        )
    return _exchange(target, timeout, deadline, finish, live_before)


def _exchange(
    target: PeerTarget, timeout: float, deadline: float, finish: Finish, live_before: tuple[TcpSession, ...]
) -> PeerResult:
    try:
        sock = _connect(target, deadline)
    except TimeoutError:
        return finish(
            Outcome.TIMED_OUT,
            f"no answer to the TCP connection within {timeout:g}s (router down, filtered or blackholed)",
        )
    except ConnectionRefusedError:
        return finish(
            Outcome.REFUSED,
            f"connection refused (RST): nothing listens on {hostport(target.address, target.port)}"
            " (BGP daemon down?) or a filter rejects this node",
        )
    except OSError as exc:
        return finish(Outcome.UNREACHABLE, _unreachable_words(target, exc))

    with sock:
        local_port = int(sock.getsockname()[1])
        ours = build_open(target)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(ours)
            answer = read_message(sock, deadline)
            if isinstance(answer, Notification):
                return _notified(target, finish, answer, live_before, local_port)
            if not isinstance(answer, Open):
                _send_quietly(sock, build_notification(FSM_ERROR, 1))
                return finish(Outcome.ERROR, f"the router answered our OPEN with {answer}", local_port=local_port)
            opened = router_open(answer)
            problem = open_problem(target, decode(Message.CODE.OPEN, ours[Message.HEADER_LEN :]), answer)
            if problem is not None:
                code, subcode, why = problem
                _send_quietly(sock, build_notification(code, subcode, why))
                return finish(
                    Outcome.MISMATCH,
                    f"the router's OPEN is one ExaBGP refuses with {notification_words(code, subcode)}: {why}",
                    router_open=opened,
                    local_port=local_port,
                )
            sock.sendall(build_keepalive())
            confirm = read_message(sock, deadline)
            if isinstance(confirm, Notification):
                return _notified(target, finish, confirm, live_before, local_port, router_open=opened)
            if not isinstance(confirm, KeepAlive):
                _send_quietly(sock, build_notification(FSM_ERROR, 2))
                return finish(
                    Outcome.ERROR,
                    f"the router answered our KEEPALIVE with {confirm}",
                    router_open=opened,
                    local_port=local_port,
                )
            _send_quietly(sock, build_notification(CEASE, ADMINISTRATIVE_SHUTDOWN, SHUTDOWN_MESSAGE))
            detail = (
                f"router id {opened.router_id}, AS{opened.asn}, hold time {opened.hold_time}s"
                f" (we offered {target.hold_time}s), capabilities: {', '.join(opened.capabilities) or 'none'}"
            )
            if live_before:
                detail += "; the router ACCEPTED a second session while this node's was established"
            return finish(Outcome.ESTABLISHED, detail, router_open=opened, local_port=local_port)
        except TimeoutError:
            return finish(
                Outcome.TIMED_OUT,
                f"TCP connected but the router sent no BGP answer within {timeout:g}s",
                local_port=local_port,
            )
        except _Closed:
            outcome = Outcome.LIVE if live_before else Outcome.CLOSED
            return finish(outcome, _closed_words(live_before, "closed"), local_port=local_port)
        except Notify as exc:
            _send_quietly(sock, bytes(exc.message()))
            return finish(Outcome.ERROR, f"the router sent a malformed message: {exc}", local_port=local_port)
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                outcome = Outcome.LIVE if live_before else Outcome.CLOSED
                return finish(outcome, _closed_words(live_before, "reset"), local_port=local_port)
            return finish(Outcome.UNREACHABLE, _unreachable_words(target, exc), local_port=local_port)


def _notified(
    target: PeerTarget,
    finish: Finish,
    notification: Any,
    live_before: tuple[TcpSession, ...],
    local_port: int,
    **extra: Any,
) -> PeerResult:
    code, subcode = int(notification.code), int(notification.subcode)
    if live_before and (code, subcode) == (CEASE, COLLISION):
        return finish(
            Outcome.LIVE,
            "the router already has an established session with this node (ExaBGP's): it answered this"
            f" second connection with NOTIFICATION {notification_words(code, subcode)}; the live session"
            " is the test",
            notification=(code, subcode),
            local_port=local_port,
            **extra,
        )
    if (code, subcode) == (OPEN_ERROR, BAD_PEER_AS):
        # the data is our own ASN echoed back (2 or 4 octets, AS_TRANS for a 4-byte one): say it plainly
        words = (
            f"{notification_words(code, subcode)}: the router does not expect AS{target.local_asn} from this"
            " address (this node's local ASN, or the router's neighbor ASN for it, is wrong)"
        )
    else:
        words = notification_words(code, subcode, bytes(notification.data))
    return finish(
        Outcome.NOTIFICATION,
        f"the router sent NOTIFICATION {words}",
        notification=(code, subcode),
        local_port=local_port,
        **extra,
    )


def _closed_words(live_before: tuple[TcpSession, ...], how: str) -> str:
    if live_before:
        return (
            f"the router already has an established session with this node (ExaBGP's): it {how} this"
            " second connection without a NOTIFICATION; the live session is the test"
        )
    return (
        f"the router accepted TCP and {how} it without a NOTIFICATION: it has no neighbor for this source"
        " address, or that neighbor does not accept connections now (disabled, starting, or waiting after an"
        " error, e.g. BIRD's `error wait time`, 60 s by default)"
    )


def _unreachable_words(target: PeerTarget, exc: OSError) -> str:
    if exc.errno == errno.EADDRNOTAVAIL and target.local_address:
        return f"cannot bind the local address {target.local_address}: it is not an address of this node"
    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"no route to {target.address} ({exc.strerror})"
    if exc.errno == errno.EINVAL:
        return f"the kernel will not send to {target.address} ({exc.strerror}: a blackhole route to it?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"the kernel forbids sending to {target.address} ({exc.strerror}: a prohibit route or firewall?)"
    return f"cannot connect to {hostport(target.address, target.port)}: {exc.strerror or exc}"


def probe_peers(
    targets: Sequence[PeerTarget], timeout: float = DEFAULT_TIMEOUT, *, force: bool = False
) -> list[PeerResult]:
    """Probe every peer at once (each bounded by `timeout`), results in the order given: a node's IPv4
    and IPv6 routers answer independently, so the whole run takes one bound, not one per peer."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(lambda target: probe_peer(target, timeout, force=force), targets))


def check_timeout(seconds: float) -> float:
    """A probe's time bound: positive, and at most a minute (a router answers in milliseconds or not at all)."""
    if not 0 < seconds <= 60:
        raise ValueError(f"--timeout: {seconds:g} must be more than 0 and at most 60 seconds")
    return seconds


# ---- which peers: health.toml's [bgp]/[[peer]], or the command line


def _asn(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ASN.MAX_4BYTE:
        raise ValueError(f"{name}: {value!r} is not an ASN (1..{ASN.MAX_4BYTE})")
    return value


def _address(value: object, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not an IP address") from None


def targets_from(
    config: Config,
    *,
    peer: str | None = None,
    asn: int | None = None,
    local_asn: int | None = None,
    router_id: str | None = None,
    local_address: str | None = None,
) -> list[PeerTarget]:
    """The peers to probe: health.toml's [[peer]] tables (INTERFACES.md section 1), or the one `peer`;
    a command-line value overrides the file's, and stands in for it where the file has none yet.

    Raises ValueError naming the missing or bad value and the option that gives it."""
    bgp = config.bgp
    configured: list[PeerConfig | None] = list(config.peers)
    local_asn = local_asn if local_asn is not None else (bgp.local_asn if bgp else None)
    router_id = router_id or (bgp.router_id if bgp else None)
    hold_time = config.hold_time
    if local_asn is None:
        raise ValueError("local ASN: health.toml has no [bgp] local_asn; give --local-asn")
    if router_id is None:
        raise ValueError("router id: health.toml has no [bgp] router_id; give --router-id")
    _asn(local_asn, "--local-asn")
    if _address(router_id, "--router-id").version != 4:
        raise ValueError(f"--router-id: {router_id!r} is not an IPv4 address (a BGP identifier is 32 bits)")
    if peer is None and (asn is not None or local_address is not None):
        raise ValueError("--asn and --local-address describe one peer: give it with --peer ADDRESS")
    if peer is not None:
        wanted = _address(peer, "--peer")
        matching: list[PeerConfig | None] = [p for p in config.peers if _address(p.address, "peer.address") == wanted]
        if not matching and asn is None:
            raise ValueError(f"--peer {peer}: not a [[peer]] in health.toml; give its ASN with --asn")
        configured = matching or [None]
    elif not configured:
        raise ValueError("no peers: health.toml has no [[peer]]; give --peer ADDRESS and --asn N")
    targets = []
    for entry in configured:
        address = str(_address(peer if entry is None else entry.address, "--peer"))
        peer_asn = _asn(asn if asn is not None else (entry.asn if entry else None), "--asn")
        source = local_address or (entry.local_address if entry else None)
        if source is not None and _address(source, "--local-address").version != _address(address, "--peer").version:
            raise ValueError(f"--local-address: {source} is not of the same family as the peer {address}")
        targets.append(PeerTarget(address, peer_asn, local_asn, str(router_id), source, hold_time))
    return targets
