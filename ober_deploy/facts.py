"""Facts the deploy reads from a node about what ober installed there (pyinfra FactBase subclasses)."""

from __future__ import annotations

from typing import Any, TypedDict

from pyinfra.api.facts import FactBase

INSTALLED_MARKER = ".ober-installed"  # written last into a venv whose pip install completed

# prints ober_health's installed version (works for every release: reads the distribution's metadata)
VERSION_COMMAND = "{venv}/bin/python -c 'import importlib.metadata as m; print(m.version(\"ober_health\"))' 2>/dev/null"


class Installed(TypedDict):
    link: str | None  # what the venv path points at (None: no link there)
    version: str | None  # ober_health's version in that venv (None: nothing installed)
    venvs: list[str]  # names of the complete venvs under the venvs directory


class OberInstall(FactBase[Installed]):
    """
    What the deploy installed: the venv ``venv`` (a symlink) points at, ober_health's version in it, and
    the complete venvs under ``venvs`` (those with the marker pip's successful install leaves).
    """

    def command(self, venv: str, venvs: str) -> str:
        version = VERSION_COMMAND.format(venv=venv)
        return (
            f'echo "link=$(readlink {venv} 2>/dev/null)"; echo "version=$({version})"; '
            f'for d in {venvs}/*/; do [ -e "$d{INSTALLED_MARKER}" ] && echo "venv=$(basename "$d")"; done; true'
        )

    @staticmethod
    def default() -> Installed:
        return {"link": None, "version": None, "venvs": []}

    def process(self, output: list[str]) -> Installed:
        found: dict[str, Any] = {"link": None, "version": None, "venvs": []}
        for line in output:
            key, _, value = line.strip().partition("=")
            if key == "venv":
                found["venvs"].append(value)
            elif key in ("link", "version"):
                found[key] = value or None
        return Installed(link=found["link"], version=found["version"], venvs=sorted(found["venvs"]))
