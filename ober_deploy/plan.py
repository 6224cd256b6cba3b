"""The validated settings of the host pyinfra is planning for, validated for the whole fleet at once.

pyinfra runs `deploy.py` once per host. The first run validates every host of the inventory, so a bad
value on the last host stops the deploy before any operation exists for the first one.
"""

from __future__ import annotations

import ipaddress

from pyinfra.api.exceptions import DeployError
from pyinfra.api.operation import OperationMeta
from pyinfra.context import host, inventory
from pyinfra.facts.server import LinuxDistribution

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


def fleet_settings() -> dict[str, NodeSettings]:
    """Every host's settings; raises `DeployError` with one line per problem of any host."""
    if not _FLEET:
        hosts = [(h.name, h.data.dict(), _address(h.name, h.data.get("ssh_hostname"))) for h in inventory]  # type: ignore[no-untyped-call]
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


_TRIGGERS: dict[tuple[str, str], list[OperationMeta]] = {}


def add_trigger(service: str, *operations: OperationMeta) -> None:
    """Remember operations whose change must reload or restart `service` on the current host."""
    _TRIGGERS.setdefault((host.name, service), []).extend(operations)


def triggers(service: str) -> list[OperationMeta]:
    return list(_TRIGGERS.get((host.name, service), []))
