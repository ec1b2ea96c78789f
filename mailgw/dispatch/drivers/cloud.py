"""What the cloud drivers (sinch.py, twilio.py) share; nothing here knows a provider.

- provider events: every callback (and every status poll) is an event kept through the
  ProviderEvents port (a `provider_event` row, outside drivers/), deduplicated by (driver,
  provider_ref, status) and ranked, so the final answer is the highest rank whatever order
  the callbacks came in, and any process sees it;
- waiting: `wait_final` wakes at once when this process keeps an event for the call, and
  otherwise looks at the kept events, then at the provider's status API, now and then;
- HTTP: cloud_http.py (httpx, retries with a back-off);
- signed tokens for callback and media URLs (HMAC-SHA256, with an expiry);
- the settings checks both drivers make (secret files, URLs).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from mailgw.dispatch.drivers.cloud_http import ApiError
from mailgw.dispatch.drivers.ports import Event, ProviderEvents

log = structlog.get_logger("mailgw.dispatch.cloud")

FINAL_RANK = 100


# -- signed tokens ----------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: Mapping[str, Any], ttl: float) -> str:
    """A URL-safe token carrying `payload` until now + ttl: body.mac (HMAC-SHA256)."""
    body = _b64(json.dumps({**payload, "exp": int(time.time() + ttl)},
                           separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])
    return f"{body}.{mac}"


def verify(key: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token we signed and that has not expired; None otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac or len(token) > 4000 or not token.isascii():
        return None  # compare_digest refuses non-ASCII str (a fuzz finding: a 500, not a 403)
    good = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:18])
    if not hmac.compare_digest(good, mac):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("exp", 0) < time.time():
        return None
    return payload


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one purpose, derived from a provider credential the hosts share."""
    return hmac.new(secret.encode(), f"mailgw:{purpose}".encode(), hashlib.sha256).digest()


# -- waiting for a final event ---------------------------------------------------------------

# In-process wake-ups: (driver, ref) -> the events of the place_call coroutines waiting
# for it, each with its own loop (tests run several apps, one loop each, in one process).
_waiters: dict[tuple[str, str], list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
_waiters_lock = threading.Lock()


def notify(driver: str, ref: str) -> None:
    """A new event for this call is stored: wake whoever waits for it in this process."""
    with _waiters_lock:
        targets = list(_waiters.get((driver, ref), ()))
    for loop, event in targets:
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # that loop is closed
            pass


async def wait_final(events: ProviderEvents, driver: str, ref: str, *, deadline: float,
                     poll: Callable[[], Awaitable[None]], poll_every: float,
                     store_every: float = 2.0) -> list[Event] | None:
    """Wait until a final event is stored for `ref`; the events, or None at the deadline.

    Wakes at once on a callback handled by this process; looks at the kept events every
    `store_every` seconds (a callback handled by another host) and calls `poll` (the
    provider's status API, which stores what it finds) every `poll_every` seconds.
    """
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    key = (driver, ref)
    with _waiters_lock:
        _waiters.setdefault(key, []).append((loop, wake))
    next_poll = loop.time() + poll_every
    try:
        while True:
            found = await asyncio.to_thread(events.events, driver, ref)
            if found and found[0].rank >= FINAL_RANK:
                return found
            now = loop.time()
            if now >= deadline:
                return None
            if now >= next_poll:
                next_poll = now + poll_every
                try:
                    await poll()
                except ApiError as exc:
                    log.warning("status_poll_failed", driver=driver, status=exc.status)
                continue
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(),
                                       timeout=min(store_every, next_poll - now,
                                                   max(deadline - now, 0.01)))
            except TimeoutError:
                pass
    finally:
        with _waiters_lock:
            left = [w for w in _waiters.get(key, []) if w[1] is not wake]
            if left:
                _waiters[key] = left
            else:
                _waiters.pop(key, None)


# -- settings checks and media --------------------------------------------------------------

_URL = re.compile(r"^https?://[^/@\s]+(/\S*)?$")


def setting_problems(files: Mapping[str, str], urls: Mapping[str, str]) -> list[str]:
    """Secret files that are not there and URLs that are not https://host[:port][/path],
    each by its full key."""
    out = [f"{key}: file not found" for key, path in files.items()
           if path and not Path(path).is_file()]
    out += [f"{key}: expected https://host[:port][/path]" for key, url in urls.items()
            if url and not _URL.match(url)]
    return out


def sniff_audio(data: bytes) -> str:
    """The content type of a sound by its first bytes (what <Play> needs to know)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if data[:4] == b"OggS":
        return "audio/ogg"
    return "application/octet-stream"
