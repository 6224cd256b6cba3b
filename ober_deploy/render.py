"""The deploy's templates rendered outside pyinfra, exactly as its `files.template` renders them (pyinfra's
`get_template`: strict undefined, trailing newline kept): for the tests, which hand the results to the
daemons' own checkers, and for the fast lab, which runs production's files with the paths moved into its
work directory (`NodePaths.moved_into`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinfra.api.util import get_template

from ober_deploy.haproxy import stats_sockets, uri_mask
from ober_deploy.settings import NodeSettings
from ober_health.paths import PATHS, NodePaths

MANAGED = "Managed by ober's pyinfra deploy: local changes are overwritten by the next deploy."
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DRAIN_TIMEOUT = 30  # seconds exabgp.service's stop path waits for client sessions to end


def template_data(ober: NodeSettings, paths: NodePaths = PATHS, **facts: Any) -> dict[str, Any]:
    """What the node's templates are rendered with, by tasks/*.py and by the tests and the fast lab: the
    validated settings, the paths (and HAProxy's stats sockets and access-log mask, which follow from them),
    and `facts` a task read from the node (HAProxy's version, nproc)."""
    return {
        "managed": MANAGED,
        "ober": ober,
        "paths": paths,
        "sockets": stats_sockets(paths),
        "uri_mask": uri_mask(),
        "drain_timeout": DRAIN_TIMEOUT,
        "watchdog_seconds": ober.health.watchdog_seconds,
        **facts,
    }


def render(template: str, data: dict[str, Any]) -> str:
    """`templates/<template>` with `data`, as pyinfra's files.template renders it."""
    return get_template(str(TEMPLATES / template)).render(**data)


def lab_paths(directory: Path, venv: Path, user: str = "haproxy") -> NodePaths:
    """The node's paths with every file ober writes under `directory` and the programs of `venv`; `haproxy`
    (which exists wherever HAProxy is installed) as the service account's group."""
    return PATHS.moved_into(directory, venv, user)
