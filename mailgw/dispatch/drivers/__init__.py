"""Drivers, by name. Only this registry knows which drivers exist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailgw.dispatch.drivers.base import CallRequest, CallResult, Driver
from mailgw.ops.config import Settings

if TYPE_CHECKING:
    from mailgw.store import Store

CLOUD = ("sinch", "twilio")  # drivers that hear back over HTTP (callbacks, media)


def make_driver(settings: Settings, store: Store | None = None) -> Driver:
    """The configured driver; cloud drivers keep what providers tell them in `store`."""
    name = settings.dispatch.driver
    if name == "simulator":
        from mailgw.dispatch.drivers.simulator import SimulatorDriver

        return SimulatorDriver(settings.drivers.simulator)
    if name == "hylafax":
        from mailgw.dispatch.drivers.hylafax import HylafaxDriver

        return HylafaxDriver(settings.drivers.hylafax)
    if name == "sinch":
        from mailgw.dispatch.drivers.sinch import SinchDriver

        return SinchDriver(settings.drivers.sinch, _store(settings, store))
    if name == "twilio":
        from mailgw.dispatch.drivers.twilio import TwilioDriver

        return TwilioDriver(settings.drivers.twilio, _store(settings, store))
    raise ValueError(f"unknown driver {name!r}")


def _store(settings: Settings, store: Store | None) -> Store:
    if store is not None:
        return store
    from mailgw.store import Store

    return Store(settings.store.url, busy_timeout=settings.store.busy_timeout)


def callback_handlers(settings: Settings, store: Store, driver: Driver | None = None
                      ) -> dict[str, Any]:
    """The HTTP callback handlers of the configured driver, by name (for [http] listen).

    A host that does not dispatch still takes the provider's callbacks into the store;
    pass the dispatcher's driver to share it (in-process wake-ups work either way).
    """
    name = settings.dispatch.driver
    if name not in CLOUD:
        return {}
    if driver is None or driver.name != name:
        driver = make_driver(settings, store)
    return {name: driver}


__all__ = ["CallRequest", "CallResult", "Driver", "callback_handlers", "make_driver"]
