"""The configured driver, built from the registry with the store's ports, and the drivers
whose HTTP routes [http] listen serves. The only place that joins drivers and the store."""

from __future__ import annotations

from dataclasses import replace

from mailgw.dispatch.drivers import registry
from mailgw.dispatch.drivers.base import Driver
from mailgw.notify.received import ReceivedMailer
from mailgw.ops.config import Settings
from mailgw.store.db import Store
from mailgw.store.provider_events import store_ports


def make_driver(settings: Settings, store: Store | None = None) -> Driver:
    """`dispatch.driver`, with its `[drivers.<name>]` settings; the provider events and
    media it may need come from `store` (opened from [store] url on first use if None)."""
    name = settings.dispatch.driver
    opened: list[Store] = [store] if store is not None else []

    def the_store() -> Store:
        if not opened:
            opened.append(Store(settings.store.url, busy_timeout=settings.store.busy_timeout))
        return opened[0]

    ports = replace(store_ports(the_store), received=ReceivedMailer(the_store, settings))
    return registry.create(name, settings.drivers[name], ports)


def callback_handlers(settings: Settings, store: Store, driver: Driver | None = None
                      ) -> dict[str, Driver]:
    """The configured driver by name, when it serves callback or media routes.

    A host that does not dispatch still takes the provider's callbacks into the store;
    pass the dispatcher's driver to share it (in-process wake-ups work either way).
    """
    name = settings.dispatch.driver
    if driver is None or driver.name != name:
        driver = make_driver(settings, store)
    return {name: driver} if driver.callback_routes else {}
