"""Stage, validate, swap: a config file only replaces the live one after the node's own checker accepts it.

    haproxy_cfg = staged_template("HAProxy config", "templates/haproxy.cfg.j2", "/etc/haproxy/haproxy.cfg",
                                  check="haproxy -c -f {staged}", ober=settings, ...)
    server.shell(..., _if=haproxy_cfg.did_change)     # reload only when the live file changed

The rendered file is uploaded next to the target as `<dest>.ober-new` and kept there: an unchanged
render is then no change at all (pyinfra compares checksums), which keeps re-runs idempotent. When it
changed, the checker runs on the node; only if it passes is the staged file copied over the live one
with an atomic rename. If the checker fails, the live file and the running daemon stay as they were,
the staged file is removed (so the next run checks again instead of silently skipping), and the
operation fails with the checker's output.
"""

from __future__ import annotations

import shlex
from typing import Any

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server

STAGED_SUFFIX = ".ober-new"


def swap_command(staged: str, dest: str, check: str) -> str:
    """Shell that validates `staged` and renames it over `dest` keeping its mode, or leaves `dest` alone."""
    tmp = shlex.quote(dest + ".ober-tmp")
    q_staged, q_dest = shlex.quote(staged), shlex.quote(dest)
    checker = check.format(staged=q_staged)
    return (
        f"if ! out=$({checker} 2>&1); then rm -f {q_staged}; "
        f'echo "{dest}: the new version failed validation, the live file is unchanged:" >&2; '
        f'echo "$out" >&2; exit 1; fi; '
        f"cp -p {q_staged} {tmp} && mv -f {tmp} {q_dest}"
    )


def staged_template(
    name: str, src: str, dest: str, check: str, mode: str = "644", group: str = "root", **data: Any
) -> OperationMeta:
    staged = dest + STAGED_SUFFIX
    upload = files.template(
        name=f"{name}: render {staged}", src=src, dest=staged, user="root", group=group, mode=mode, **data
    )
    return server.shell(
        name=f"{name}: validate and swap into {dest}",
        commands=[swap_command(staged, dest, check)],
        _if=upload.did_change,
    )
