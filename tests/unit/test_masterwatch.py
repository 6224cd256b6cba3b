"""Watching HAProxy's master against a real `haproxy -W`: the pid comes from HAProxy's stats socket, a reload
(SIGUSR2 to the master, as `systemctl reload` sends) never looks like an exit, a killed master does at once."""

from __future__ import annotations

import os
import queue
import signal
import time
from pathlib import Path

from ober_health.masterwatch import MasterExited, MasterWatch, MasterWatched, socket_owner
from tests.unit.test_checks import Haproxy, haproxy, wait_for  # noqa: F401 (haproxy: the fixture)

RELOADS = 5


def worker_pid(instance: Haproxy) -> int:
    """The serving worker, from HAProxy's own `show info` on the stats socket."""
    from ober_health.checks import haproxy_command

    info = haproxy_command(instance.socket_path, "show info", 2.0)
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("Pid:")))


def reload(instance: Haproxy) -> None:
    """SIGUSR2 to the master, then wait until a new worker answers on the stats socket and the master has
    reaped the old one (HAProxy 2.6's master acts on a SIGUSR2 sent before that only at the next one)."""
    log = instance.workdir / "haproxy.log"
    reaped = log.read_text().count("Former worker")
    before = worker_pid(instance)
    os.kill(instance.proc.pid, signal.SIGUSR2)
    wait_for(lambda: worker_pid(instance) != before, "a new worker after the reload")
    wait_for(lambda: log.read_text().count("Former worker") > reaped, "the master to reap the old worker")


def test_the_stats_socket_names_the_master_before_and_after_reloads(haproxy: Haproxy) -> None:  # noqa: F811
    assert socket_owner(haproxy.socket_path, 1.0) == haproxy.proc.pid  # `haproxy -W` is the master
    assert worker_pid(haproxy) != haproxy.proc.pid
    reload(haproxy)
    assert socket_owner(haproxy.socket_path, 1.0) == haproxy.proc.pid, "the master re-executes in place"


def test_nothing_listens_no_owner(tmp_path: Path) -> None:
    assert socket_owner(str(tmp_path / "absent.sock"), 1.0) is None
    (tmp_path / "file").write_text("")
    assert socket_owner(str(tmp_path / "file"), 1.0) is None


def test_reloads_post_nothing_and_a_killed_master_posts_its_exit(haproxy: Haproxy) -> None:  # noqa: F811
    events: queue.SimpleQueue[MasterWatched | MasterExited] = queue.SimpleQueue()
    MasterWatch(haproxy.socket_path, events.put, retry=0.05, timeout=1.0).start()
    assert events.get(timeout=10) == MasterWatched(haproxy.proc.pid)
    for _ in range(RELOADS):
        reload(haproxy)
    time.sleep(0.2)  # the last old worker's exit, too, would have shown by now
    assert events.empty(), f"a reload was taken for an exit: {events.get()}"
    os.kill(haproxy.proc.pid, signal.SIGKILL)
    assert events.get(timeout=5) == MasterExited(haproxy.proc.pid)
