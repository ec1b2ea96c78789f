"""A driver in one file, outside mailgw (tests/integration/test_driver_plugin.py adds it with
one `registry.register` line): every fax is delivered at once, every page, with the CSID
of its settings, and each call is kept as a provider event through the ProviderEvents port.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from mailgw.dispatch.drivers.base import DELIVERED, PROVIDER_ERROR, CallRequest, CallResult, Driver
from mailgw.dispatch.drivers.ports import CheckContext, Ports

NAME = "echo"


@dataclass
class EchoSettings:
    csid: str = "ECHO"  # the CSID every call reports
    lines: int = 2
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"

    def problems(self, ctx: CheckContext) -> list[str]:
        if len(self.csid) > 20:
            return [f"drivers.{NAME}.csid: at most 20 characters (T.30's CSI)"]
        return []


class EchoDriver(Driver):
    name = NAME
    channels = frozenset({"fax"})

    def __init__(self, settings: EchoSettings, ports: Ports):
        self.settings = settings
        self.events = ports.events
        self.lines = settings.lines
        self.retry = settings.retry

    async def place_call(self, request: CallRequest) -> CallResult:
        if not request.document:
            return CallResult(PROVIDER_ERROR, error_text="no document")
        pages = (request.pages_total or 1) - request.first_page + 1
        ref = f"echo-{request.idempotency_key}"
        await asyncio.to_thread(self.events.record, NAME, ref, "delivered", 100,
                                {"number": request.number, "pages": pages})
        return CallResult(DELIVERED, pages_sent=pages, csid=self.settings.csid, duration=1.0,
                          provider_ref=ref)
