"""systemd's notify protocol (READY=1, WATCHDOG=1, WATCHDOG=trigger) without a dependency: one datagram each.

ExaBGP keeps a dead API process's routes and respawns it, so a *hung* health program would leave a
stale route up forever. The watchdog closes that hole: we ping after every completed check loop; if the
pings stop, systemd kills exabgp.service, the BGP session drops and every route of this node goes. The
other way round, a hung ExaBGP (it stops answering us) gets WATCHDOG=trigger and no more pings: systemd
restarts it at once, and the node comes back without a person.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends to $NOTIFY_SOCKET; silently does nothing when not run by systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self.address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, message: str) -> bool:
        """Send one message; False if it could not be sent (never raises: the loop must go on)."""
        if self._socket is None:
            return False
        try:
            self._socket.sendto(message.encode(), self.address)
        except OSError:
            return False
        return True
