"""A rolling restart: one host at a time, the next only once this one serves again, and no further.

pyinfra's `_serial=True` runs an operation host by host, but it carries on with the next host when one
fails (it only drops failed hosts after the operation ran everywhere). For a BGP change that is how a
wrong peer ASN takes down a whole fleet. `rolling.restart` therefore keeps its own record of the roll:
once a host did not come back, every later host is left exactly as it is, running its old config, its
old code and announcing its routes, and the run fails on the host that broke.

The files and the venv that the restart is for go live as part of it, per host, just before the
restart (`swap`, `link`): a host the roll never reached never sees them.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from pyinfra import logger
from pyinfra.api.command import FunctionCommand, StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.host import Host
from pyinfra.api.operation import operation
from pyinfra.api.state import State
from pyinfra.context import ctx_state, host, state
from pyinfra.facts.files import File

from ober_deploy.render import render
from ober_deploy.staged import staged_path

SETTLE_SECONDS = 2  # after the node reports itself serving: the router installs the routes it just received
OLD_SUFFIX = ".ober-old"


@dataclass
class _Roll:
    """One rolling restart in one run: which host is being restarted, and where the roll stopped."""

    service: str
    version: str | None  # shell command printing what is installed
    current: str | None = None
    stopped_at: str | None = None

    def begin(self, state: State, host: Host) -> bool:
        self.current = host.name
        return True

    def end(self, state: State, host: Host) -> bool:
        self.current = None
        if self.version:
            ok, output = host.run_shell_command(StringCommand(self.version))
            host.log(f"{self.service} restarted; installed: {(ok and output.stdout.strip()) or 'none'}")
        return True


_ROLLS: WeakKeyDictionary[State, dict[str, _Roll]] = WeakKeyDictionary()


def restart_script(
    host_name: str,
    service: str,
    swap: Sequence[str],
    link: tuple[str, str] | None,
    wait: str | None,
    timeout: float,
    skip_wait_if: str | None,
    settle: float = SETTLE_SECONDS,
) -> str:
    """The shell one host runs (templates/rolling-restart.sh.j2): the service stops (its own stop path drains
    the host), the staged files and the link go live, the service starts, and the host must report itself
    serving (`wait` exits 0) within `timeout` seconds, or the script fails with `wait`'s output.

    Stop, then swap, then start: the stop runs the code and config that are running (a drain by the new
    `ober` against the old health program, or the old one reading a new config, need not understand each
    other), the start the new ones. Every value is quoted here; the template holds the program."""
    q = shlex.quote
    data: dict[str, Any] = {
        "service": q(service),
        "status": f"systemctl status --no-pager --lines=20 {q(service)} >&2",
        "failed_to_stop": q(f"{host_name}: {service} failed to stop:"),
        "failed_to_start": q(f"{host_name}: {service} failed to start:"),
        # each staged copy was validated by staged.template(swap=False) in this run
        "swap": [(q(staged_path(path)), q(path)) for path in swap],
        "link": None,
        "wait": wait,  # a shell command, as given
        "timeout": round(timeout),
        "settle": f"{settle:g}",
        "skip_wait_if": q(skip_wait_if) if skip_wait_if else None,
        "not_waited": q(f"{host_name}: {skip_wait_if} exists (maintenance): not waited for"),
        "gave_up": q(
            f"{host_name}: {service} restarted, but `{wait}` did not succeed within {timeout:g}s:"
            " the roll stops here, the hosts after this one are left as they are"
        ),
    }
    if link:
        path, target = link
        data["link"] = {
            "path": q(path),
            "target": q(target),
            "old": q(path + OLD_SUFFIX),  # a real directory there (a release before links), removed once back
            "new": q(path + ".ober-link"),
            "parent": q(posixpath.dirname(target)),
        }
    return render("rolling-restart.sh.j2", data)


@operation(is_idempotent=False)
def restart(
    service: str,
    swap: Sequence[str] = (),
    link: tuple[str, str] | None = None,
    wait: str | None = None,
    timeout: float = 30.0,
    skip_wait_if: str | None = None,
    version: str | None = None,
    settle: float = SETTLE_SECONDS,
) -> Generator[Any, None, None]:
    """
    Restart a service one host at a time; stop the roll at the first host that does not serve again.

    + service: the systemd unit to restart (its own stop path drains the host)
    + swap: live files whose validated copy (``<file>.ober-new``, left by ``staged.template(swap=False)``)
      is renamed into place just before the restart
    + link: ``(path, target)``: the symlink ``path`` is pointed at ``target`` just before the restart (a
      venv of this deploy); once the host serves again the other entries of ``target``'s directory go
    + wait: shell command that exits 0 once the host serves again (``ober status``)
    + timeout: seconds ``wait`` has to succeed; then the operation fails with ``wait``'s output
    + skip_wait_if: a file on the host whose presence means it is not meant to serve (maintenance):
      restarted, not waited for
    + version: shell command printing what is installed, logged once the host serves again
    + settle: seconds to wait once ``wait`` succeeded, before the next host (the router installs the routes
      it just received)

    Must run with ``_serial=True``. Once a host failed, every later host is not touched: its staged
    copies are removed, and it keeps running its old config, its old code and its routes.

    **Example:**

    .. code:: python

        from ober_deploy import rolling

        rolling.restart(
            name="restart ExaBGP, one node at a time",
            service="exabgp.service",
            swap=["/etc/ober/exabgp.conf"],
            wait="/opt/ober/venv/bin/ober status",
            timeout=30,
            _serial=True,
            _if=any_changed(exabgp_config, exabgp_unit),
        )
    """
    op_hash = host.current_op_hash
    assert op_hash is not None  # set by pyinfra while an operation's commands are generated
    if not state.get_op_meta(op_hash).global_arguments.get("_serial"):
        raise OperationError("rolling.restart must run with _serial=True (one host at a time)")
    rolls = _ROLLS.setdefault(ctx_state.get(), {})  # type: ignore[no-untyped-call]
    roll = rolls.setdefault(op_hash, _Roll(service, version))
    if state.is_executing:
        if roll.current is not None:  # the host before this one began and never ended: it failed
            roll.stopped_at, roll.current = roll.current, None
        if roll.stopped_at is not None:
            host.log(
                f"not restarted: the roll stopped at {roll.stopped_at}; {service} keeps running with the"
                " config and code it had, and its routes",
                log_func=logger.warning,
            )
            unused = [staged_path(path) for path in swap if host.get_fact(File, path=staged_path(path))]
            if unused:
                yield StringCommand("rm", "-f", *unused)
            return
    yield FunctionCommand(roll.begin, (), {})
    yield StringCommand(restart_script(host.name, service, swap, link, wait, timeout, skip_wait_if, settle))
    yield FunctionCommand(roll.end, (), {})
