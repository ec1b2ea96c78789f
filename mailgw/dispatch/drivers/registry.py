"""The drivers, by name: each entry is (its settings class, its factory).

The configuration reads `[drivers.<name>]` with the entry's settings class, `check-config`
asks that class for its problems, the generated reference lists its keys, and the daemon
builds the chosen driver with the factory. Nothing else in mailgw names a driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mailgw.dispatch.drivers.base import Driver
from mailgw.dispatch.drivers.ports import CheckContext, Ports


class DriverSettings(Protocol):
    """What every driver's settings dataclass has (besides its own keys, all defaulted)."""

    retry: str  # this driver's overrides of [dispatch.retry], checked with the others

    def problems(self, ctx: CheckContext) -> list[str]:
        """What is wrong, each as `drivers.<name>.<key>: why` (empty when all is well)."""
        ...


Factory = Callable[[Any, Ports], Driver]  # (its settings, the ports) -> the driver


@dataclass(frozen=True)
class Entry:
    name: str
    settings: type[DriverSettings]
    factory: Factory


_entries: dict[str, Entry] = {}


def register(name: str, settings: type[DriverSettings], factory: Factory) -> None:
    """Add a driver (or replace the one of that name): `[drivers.<name>]` is read with
    `settings`, and `dispatch.driver = "<name>"` builds it with `factory(settings, ports)`."""
    _entries[name] = Entry(name, settings, factory)


def unregister(name: str) -> None:
    _entries.pop(name, None)


def entry(name: str) -> Entry:
    """The entry of that name; KeyError when no such driver is registered."""
    return _entries[name]


def entries() -> list[Entry]:
    """Every entry, in the order registered (the reference lists them so)."""
    return list(_entries.values())


def names() -> tuple[str, ...]:
    return tuple(_entries)


def create(name: str, settings: Any, ports: Ports) -> Driver:
    return _entries[name].factory(settings, ports)
