"""Start lab daemons as foreground children and stop exactly those, by PID.

PID 1 on the build machine is not a normal init: anything that daemonizes ends up a zombie nobody reaps.
So every lab daemon runs in the foreground (`bird -f`, `haproxy -W -db`, ExaBGP with daemonize=false) as a
child of this process, in its own session so that one `killpg` reaches its helpers too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class Supervisor:
    """Owns the lab's child processes; `stop_all` leaves none behind."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        netns: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run `argv` (inside `netns` if given) with stdout+stderr to `<logdir>/<name>.log`."""
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is already running (pid {self.procs[name].pid})")
        full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
        with (self.logdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                full,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def kill(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to the named process only (not its group): what `kill -SIG PID` does."""
        os.kill(self.procs[name].pid, sig)

    def signal_group(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to the process and everything it started (HAProxy's master and workers)."""
        os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str, timeout: float = 3.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout`, and reap it."""
        proc = self.procs.get(name)
        if proc is None:
            return
        _stop_group(proc, timeout)

    def stop_all(self, timeout: float = 2.0) -> None:
        """Stop every child: SIGTERM all groups at once, then SIGKILL what is left after `timeout`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _killpg(proc, signal.SIGCONT)  # a SIGSTOPped test victim must be able to die
                _killpg(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            # children of the session leader may outlive it: finish them off too
            _killpg(proc, signal.SIGKILL)


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        _killpg(proc, signal.SIGCONT)
        _killpg(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc, signal.SIGKILL)
            proc.wait(timeout=5)
    _killpg(proc, signal.SIGKILL)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll `predicate()` until true; return the seconds it took, or raise TimeoutError naming `what`."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def run(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short command, capture its output; on failure the error carries stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def netns_exec(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def env_with(**extra: str) -> dict[str, str]:
    """The current environment plus `extra` (dotted ExaBGP keys need a dict, not kwargs)."""
    env = dict(os.environ)
    env.update(extra)
    return env
