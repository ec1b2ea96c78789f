"""How a role's loop waits for work: until it is woken (new work), stopped, or its poll
interval has passed (work that came in some other way, e.g. another node)."""

from __future__ import annotations

import asyncio


async def until_woken(stop: asyncio.Event, wakeup: asyncio.Event, timeout: float) -> None:
    """Clear `wakeup`, then sleep until it or `stop` is set, at most `timeout` seconds."""
    wakeup.clear()
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
