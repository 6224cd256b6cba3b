"""Stage, validate, swap: a config file replaces the live one only after the node's own checker accepts it.

`staged.template` is a pyinfra operation in the style of `files.template`, with one more argument, the
checker. It decides from the LIVE file on the node (content, owner, mode), never from an earlier staged
copy: a hand edit or a hand-broken file is a difference like any other and is repaired by the next
deploy, still through the checker; an unchanged file is no change at all (no upload, no reload).
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from io import StringIO
from typing import Any

from jinja2 import TemplateError
from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import OperationError
from pyinfra.api.operation import operation
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.context import host, state
from pyinfra.facts.files import File, Sha1File
from pyinfra.operations import files
from pyinfra.operations.util.files import ensure_mode_int

STAGED_SUFFIX = ".ober-new"


def staged_path(dest: str) -> str:
    """Where the candidate for `dest` is uploaded and checked: next to it, so the swap is one rename."""
    return dest + STAGED_SUFFIX


def check_command(dest: str, check: str, swap: bool = True) -> str:
    """Shell that validates the staged copy of `dest` and renames it over `dest` (if `swap`), or removes it.

    A rejected copy is removed, the live file is not touched, and the checker's own output is printed
    (the operator must see why). The rename keeps the staged copy's owner and mode, and leaves nothing
    staged behind; a reader holding the old file keeps reading the old inode.
    """
    staged = staged_path(dest)
    q_staged, q_dest = shlex.quote(staged), shlex.quote(dest)
    checker = check.format(staged=q_staged)
    command = (
        f"if ! out=$({checker} 2>&1); then rm -f {q_staged}; "
        f'echo "{dest}: the new version failed validation, the live file is unchanged:" >&2; '
        f'echo "$out" >&2; exit 1; fi'
    )
    return f"{command}; mv -f {q_staged} {q_dest}" if swap else command


@operation()
def template(
    src: str,
    dest: str,
    check: str,
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    swap: bool = True,
    **data: Any,
) -> Generator[Any, None, None]:
    """
    Render a Jinja2 template and put it live only once the node's own checker accepts it.

    + src: template filename, relative to the deploy directory
    + dest: the live file on the node
    + check: shell command that validates a file, ``{staged}`` standing for its path (``haproxy -c -f {staged}``)
    + user: user to own the file
    + group: group to own the file
    + mode: permissions of the file
    + swap: rename the validated copy over ``dest`` now; ``False`` leaves it at ``<dest>.ober-new`` for
      ``rolling.restart`` to rename just before it restarts the daemon that reads it, one host at a time

    The render is compared with the live ``dest`` (content, owner, mode). When they match nothing
    happens (a staged copy an interrupted run left behind is removed). When they differ the render is
    uploaded to ``<dest>.ober-new`` with its owner and mode, the checker runs on it, and only if it passes
    is it renamed over ``dest`` (atomic; nothing stays staged). A rejected render is removed, the live file
    and the running daemon stay as they were, and the operation fails with the checker's output.

    As with ``files.template``, ``host``, ``state`` and ``inventory`` are available in the template and
    further keyword arguments become template variables.

    **Example:**

    .. code:: python

        from ober_deploy import staged

        config = staged.template(
            name="HAProxy config",
            src="templates/haproxy.cfg.j2",
            dest="/etc/haproxy/haproxy.cfg",
            check="haproxy -c -f {staged}",
            ober=settings,
        )
        server.shell(name="reload HAProxy", commands=["systemctl reload haproxy"], _if=config.did_change)
    """
    data.setdefault("host", host)
    data.setdefault("state", state)
    data.setdefault("inventory", state.inventory)
    path = f"{state.cwd}/{src}" if state.cwd else src
    try:
        rendered = get_template(path).render(data)
    except TemplateError as error:
        raise OperationError(f"{src}: {error}") from None
    staged = staged_path(dest)

    live = host.get_fact(File, path=dest)
    if (
        live
        and host.get_fact(Sha1File, path=dest) == get_file_sha1(StringIO(rendered))
        and (live["user"], live["group"], live["mode"]) == (user, group, ensure_mode_int(mode))
    ):
        if host.get_fact(File, path=staged):
            yield StringCommand("rm", "-f", staged)  # left by an interrupted run: never swapped in later
        else:
            host.noop(f"{dest} is live and up to date")
        return

    yield from files.put._inner(
        src=StringIO(rendered),
        dest=staged,
        user=user,
        group=group,
        mode=mode,
        add_deploy_dir=False,
        create_remote_dir=False,
        force=True,
    )
    yield StringCommand(check_command(dest, check, swap=swap))
