"""The telephone drivers. One line below per driver: its name, its settings class (read from
`[drivers.<name>]`, checked by `check-config`, listed in docs/config-reference.md) and its
factory. A driver added elsewhere (a plugin, a test) calls `registry.register` the same way.
"""

from __future__ import annotations

from mailgw.dispatch.drivers import registry
from mailgw.dispatch.drivers.base import CallRequest, CallResult, Driver
from mailgw.dispatch.drivers.hylafax import HylafaxDriver, HylafaxSettings
from mailgw.dispatch.drivers.simulator import SimulatorDriver, SimulatorSettings
from mailgw.dispatch.drivers.sinch import SinchDriver, SinchSettings
from mailgw.dispatch.drivers.twilio import TwilioDriver, TwilioSettings

registry.register("simulator", SimulatorSettings, lambda s, ports: SimulatorDriver(s))
registry.register("hylafax", HylafaxSettings, lambda s, ports: HylafaxDriver(s, ports.received))
registry.register("sinch", SinchSettings, SinchDriver)
registry.register("twilio", TwilioSettings, TwilioDriver)

__all__ = ["CallRequest", "CallResult", "Driver", "registry"]
