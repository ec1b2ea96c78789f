"""What the cloud drivers (sinch.py, twilio.py) share; nothing here knows a provider.

- provider events: every callback (and every status poll) is a row of `provider_event`,
  deduplicated by (driver, provider_ref, status) and ranked, so the final answer is the
  highest rank whatever order the callbacks came in, and any process sees it;
- waiting: `wait_final` wakes at once when this process stores an event for the call, and
  otherwise looks at the store, then at the provider's status API, now and then;
- HTTP: a small JSON/form client on stdlib urllib (in a thread) that tries 429, 5xx and
  timeouts again with a back-off (Retry-After when given);
- signed tokens for callback and media URLs (HMAC-SHA256, with an expiry).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailgw.store import Store
from mailgw.store.models import ProviderEvent

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


# -- provider events ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    status: str
    rank: int
    payload: dict[str, Any]


def record_event(store: Store, driver: str, ref: str, status: str, rank: int,
                 payload: Mapping[str, Any]) -> bool:
    """Store one event; False when the same (driver, ref, status) was already stored."""
    try:
        with store.tx() as s:
            exists = s.scalar(select(ProviderEvent.id).where(
                ProviderEvent.driver == driver, ProviderEvent.provider_ref == ref,
                ProviderEvent.status == status))
            if exists is not None:
                return False
            s.add(ProviderEvent(driver=driver, provider_ref=ref, status=status, rank=rank,
                                payload=json.dumps(dict(payload), default=str)))
    except IntegrityError:  # the same callback, stored by another process just now
        return False
    return True


def events(store: Store, driver: str, ref: str) -> list[Event]:
    """Every event stored for this call, highest rank first (earliest first among equals)."""
    with store.read() as s:
        rows = s.execute(select(ProviderEvent.status, ProviderEvent.rank, ProviderEvent.payload)
                         .where(ProviderEvent.driver == driver,
                                ProviderEvent.provider_ref == ref)
                         .order_by(ProviderEvent.rank.desc(), ProviderEvent.id)).all()
    out = []
    for status, rank, payload in rows:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {}
        out.append(Event(status, rank, data if isinstance(data, dict) else {}))
    return out


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


async def wait_final(store: Store, driver: str, ref: str, *, deadline: float,
                     poll: Callable[[], Awaitable[None]], poll_every: float,
                     store_every: float = 2.0) -> list[Event] | None:
    """Wait until a final event is stored for `ref`; the events, or None at the deadline.

    Wakes at once on a callback handled by this process; looks at the store every
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
            found = await asyncio.to_thread(events, store, driver, ref)
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


# -- HTTP client --------------------------------------------------------------------------------

class ApiError(Exception):
    """The provider's API did not do what was asked; `retryable` says if later may work."""

    def __init__(self, status: int | None, text: str, *, retryable: bool):
        super().__init__(f"{status}: {text}" if status else text)
        self.status = status
        self.text = text
        self.retryable = retryable


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError as exc:
            raise ApiError(self.status, "the answer is not JSON", retryable=True) from exc
        if not isinstance(data, dict):
            raise ApiError(self.status, "the answer is not a JSON object", retryable=True)
        return data


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]
              ) -> tuple[str, bytes]:
    """multipart/form-data: (content type, body); files are (field, filename, type, data)."""
    boundary = f"mailgw-{uuid.uuid4().hex}"
    out = bytearray()
    for name, value in fields:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                ).encode() + value.encode() + b"\r\n"
    for name, filename, ctype, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _send(method: str, url: str, body: bytes | None, headers: dict[str, str],
          timeout: float) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    context = ssl.create_default_context()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                         resp.read(4_000_000))
    except urllib.error.HTTPError as exc:
        with exc:
            data = exc.read(100_000) if exc.fp is not None else b""
            return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, data)


class Client:
    """One provider's API: retries 429, 5xx, timeouts and refused connections."""

    def __init__(self, base_url: str, auth: str, *, timeout: float, retries: int,
                 backoff: float = 1.0, max_backoff: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    async def call(self, method: str, path: str, *, body: bytes | None = None,
                   content_type: str | None = None, retry_timeouts: bool = True,
                   retries: int | None = None) -> Reply:
        headers = {"Authorization": self.auth, "Accept": "application/json",
                   "User-Agent": "mailgw"}
        if content_type:
            headers["Content-Type"] = content_type
        url = self.base_url + path
        retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                reply = await asyncio.to_thread(_send, method, url, body, headers,
                                                self.timeout)
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                timed_out = isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError)
                what = "timed out" if timed_out else f"unreachable ({type(reason).__name__})"
                if attempt > retries or (timed_out and not retry_timeouts):
                    raise ApiError(None, what, retryable=True) from None
                log.info("api_retry", path=path.split("?")[0], reason=what, attempt=attempt)
            else:
                if reply.status < 400:
                    return reply
                retryable = reply.status == 429 or reply.status >= 500
                if not retryable or attempt > retries:
                    raise ApiError(reply.status, _error_text(reply), retryable=retryable)
                after = reply.headers.get("retry-after", "")
                if after.isdigit():
                    wait = min(float(after), self.max_backoff)
                log.info("api_retry", path=path.split("?")[0], status=reply.status,
                         attempt=attempt)
            if wait is None:
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
                wait *= 0.5 + random.random() / 2
            await asyncio.sleep(wait)


def _error_text(reply: Reply) -> str:
    try:
        data = json.loads(reply.body)
    except ValueError:
        return reply.body[:200].decode("utf-8", "replace").strip() or f"HTTP {reply.status}"
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])[:300]
    return f"HTTP {reply.status}"


def sniff_audio(data: bytes) -> str:
    """The content type of a sound by its first bytes (what <Play> needs to know)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if data[:4] == b"OggS":
        return "audio/ogg"
    return "application/octet-stream"
