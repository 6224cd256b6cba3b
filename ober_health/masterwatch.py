"""Watch HAProxy's master process and say the moment it exits: a dead HAProxy is withdrawn at once, not
after `fall` polls (issue 14: kill -> FIB in milliseconds instead of ~300 ms).

Which process is HAProxy's master is asked of HAProxy's own stats socket, the one the checks already read:
the kernel records who created a listening unix socket (SO_PEERCRED on a connection to it gives that pid),
and in master-worker mode (`master-worker` in haproxy.cfg, `-W`/`-Ws` on Debian's unit) that is the master,
which creates every listener and keeps them across reloads. Neither /proc (hidden by the unit's
ProtectProc=invisible) nor a pid file (stale after a crash) is trusted.

A reload never fires: `systemctl reload` sends SIGUSR2 to the master, which re-executes itself in place (same
pid, same pidfd) and replaces only the workers. A master that exits (kill, crash, `systemctl stop` or
`restart`, a worker's crash, which takes the master down by default) makes the pidfd readable at once.

The watcher only posts events (`MasterWatched`, `MasterExited`) to the decider's queue; it decides nothing.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ober_health.checks import connect_unix

log = logging.getLogger("ober-health")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class MasterWatched:
    """HAProxy's master `pid` is watched from now on (at start, and after HAProxy came back)."""

    pid: int


@dataclass(frozen=True)
class MasterExited:
    """The watched master `pid` exited: HAProxy is gone."""

    pid: int


def socket_owner(path: str, timeout: float) -> int | None:
    """The pid of the process that created the listening unix socket `path` (HAProxy's master in
    master-worker mode), or None when nothing listens there. Connects and closes without a command."""
    try:
        with connect_unix(path, timeout) as sock:
            pid, _uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    except OSError:
        return None
    return pid or None  # 0: a peer outside our pid namespace


class MasterWatch:
    """A daemon thread: find the master, hold a pidfd on it, post `MasterExited` when it becomes readable,
    then look for the next master every `retry` seconds (HAProxy restarted: a new pid)."""

    def __init__(
        self, stats_socket: str, post: Callable[[MasterWatched | MasterExited], None], retry: float, timeout: float
    ) -> None:
        self.stats_socket = stats_socket
        self.post = post
        self.retry = retry
        self.timeout = timeout
        self.thread = threading.Thread(target=self._run, name="haproxy-master", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                pid = self.watch_once()
            except OSError as exc:  # pidfd_open refused (an old kernel, a seccomp filter): polling still works
                log.error("cannot watch HAProxy's master (%s): a dead HAProxy is seen by the checks only", exc)
                return
            if pid is None:
                time.sleep(self.retry)

    def watch_once(self) -> int | None:
        """Find the master and block until it exits (posting both events); None when there was none to
        watch (HAProxy down, or the pid gone before it could be opened)."""
        pid = socket_owner(self.stats_socket, self.timeout)
        if pid is None:
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None  # exited between the two calls (its workers still held the socket open)
        try:
            self.post(MasterWatched(pid))
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll():  # readable when the process has exited; nothing else wakes it
                pass
            self.post(MasterExited(pid))
        finally:
            os.close(pidfd)
        time.sleep(self.retry)  # its workers may still hold the socket open for a moment: do not find it again
        return pid
