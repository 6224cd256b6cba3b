"""The state file `ober status` reads: written atomically after every check loop.

Temp file in the same directory + `os.replace`, so a reader never sees half a file. It carries
`updated_at` and the writer's pid so that a reader can tell a stale file (health program hung or gone)
from a fresh one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_VERSION = 1


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace `path` with `state` as JSON (mode 0644: operators read it unprivileged)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_state(path: Path) -> dict[str, Any]:
    """The last state written; raises OSError/ValueError when missing or unreadable."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: not an ober state file of version {STATE_VERSION}")
    return data
