"""The validated settings of the host pyinfra is planning for, validated for the whole fleet at once, and
the wheel set its nodes install, built once per run.

pyinfra runs `deploy.py` once per host, every host in its own greenlet. The first run validates every
host of the inventory, so a bad value on the last host stops the deploy before any operation exists for
the first one. The wheels are built by the first host that needs them while the others wait on a lock
that yields to gevent (ober_deploy.locking); a failed build fails every host with the same message.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyinfra.api.exceptions import DeployError
from pyinfra.api.host import Host
from pyinfra.context import host, inventory
from pyinfra.facts.server import LinuxDistribution

from ober_deploy import wheels
from ober_deploy.platform import Platform, platform_from_facts
from ober_deploy.settings import InventoryError, NodeSettings, validate_inventory

_FLEET: dict[str, NodeSettings] = {}


def _address(name: str, ssh_hostname: object) -> str | None:
    for candidate in (ssh_hostname, name):
        try:
            return str(ipaddress.ip_address(str(candidate)))
        except ValueError:
            continue
    return None


def inventory_hosts(hosts: Iterable[Host]) -> list[tuple[str, dict[str, Any], str | None]]:
    """What `validate_inventory` takes of pyinfra's hosts: name, data, and the address the host is reached
    at when it is an IP (its `ssh_hostname` or its name), the default router id."""
    return [(h.name, h.data.dict(), _address(h.name, h.data.get("ssh_hostname"))) for h in hosts]  # type: ignore[no-untyped-call]


def fleet_settings() -> dict[str, NodeSettings]:
    """Every host's settings; raises `DeployError` with one line per problem of any host."""
    if not _FLEET:
        hosts = inventory_hosts(inventory)
        try:
            _FLEET.update(validate_inventory(hosts))
        except InventoryError as error:
            raise DeployError("invalid inventory, nothing was changed:\n" + str(error)) from None
    return _FLEET


def current_settings() -> NodeSettings:
    return fleet_settings()[host.name]


def current_platform() -> Platform:
    """The distribution family of the host being planned (from pyinfra's LinuxDistribution fact)."""
    return platform_from_facts(host.get_fact(LinuxDistribution))


_WHEELS: dict[Path | None, wheels.WheelSet | wheels.WheelError | None] = {}  # None: being built


def current_wheels() -> wheels.WheelSet:
    """The wheel set for the current host: its `ober_wheels_dir`, or the one built from this checkout.

    One build per run: the other hosts' greenlets sleep (cooperatively) until the first one is done, and
    share its result, a failure included.
    """
    directory = current_settings().wheels_dir
    key = Path(directory) if directory else None
    if key not in _WHEELS:
        _WHEELS[key] = None
        try:
            built = key or wheels.ensure_wheels(log=lambda message: logging.getLogger("pyinfra").info(f"--> {message}"))
            _WHEELS[key] = wheels.WheelSet.read(built)
        except wheels.WheelError as error:
            _WHEELS[key] = error
        except BaseException as error:  # interrupted: nobody may wait for this build any more
            _WHEELS[key] = wheels.WheelError(f"the wheel build was interrupted: {error!r}")
            raise
    while (found := _WHEELS[key]) is None:
        time.sleep(0.1)  # gevent's sleep under pyinfra: the building greenlet runs meanwhile
    if isinstance(found, wheels.WheelError):
        raise DeployError(f"no wheel set for the nodes, nothing was changed:\n{found}")
    return found
