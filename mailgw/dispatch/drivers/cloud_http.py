"""The cloud drivers' HTTP client: one httpx.AsyncClient per driver (connections reused,
bounded by timeouts and limits) that tries 429, 5xx, timeouts and refused connections
again with a back-off (Retry-After when given). Nothing here knows a provider."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

log = structlog.get_logger("mailgw.dispatch.cloud")

MAX_ANSWER = 4_000_000  # bytes of an answer read; a provider's JSON is far smaller


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


class Client:
    """One provider's API: retries 429, 5xx, timeouts and refused connections.

    The httpx client is made on first use in the running loop (and made again in another
    loop: tests run one loop per app); `lines` bounds the connections it keeps."""

    def __init__(self, base_url: str, auth: str, *, timeout: float, retries: int,
                 backoff: float = 1.0, max_backoff: float = 30.0, lines: int = 4):
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        # the calls in flight each poll now and then, a hang-up or a look-up may overlap
        self.limits = httpx.Limits(max_connections=2 * max(lines, 1) + 2,
                                   max_keepalive_connections=max(lines, 1),
                                   keepalive_expiry=30.0)
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, timeout=httpx.Timeout(self.timeout),
                limits=self.limits, verify=ssl.create_default_context(),
                headers={"Authorization": self.auth, "Accept": "application/json",
                         "User-Agent": "mailgw"})
            self._loop = loop
        return self._http

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._loop is asyncio.get_running_loop():
            await http.aclose()

    async def _send(self, method: str, path: str, body: bytes | None,
                    headers: dict[str, str]) -> Reply:
        async with self._client().stream(method, path, content=body, headers=headers) as resp:
            data = bytearray()
            async for chunk in resp.aiter_bytes():
                data += chunk
                if len(data) >= MAX_ANSWER:
                    break
            return Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()},
                         bytes(data[:MAX_ANSWER]))

    async def call(self, method: str, path: str, *, body: bytes | None = None,
                   content_type: str | None = None, retry_timeouts: bool = True,
                   retries: int | None = None) -> Reply:
        headers = {"Content-Type": content_type} if content_type else {}
        retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                reply = await self._send(method, path, body, headers)
            except (httpx.TransportError, OSError) as exc:
                timed_out = isinstance(exc, httpx.TimeoutException | TimeoutError)
                what = "timed out" if timed_out else f"unreachable ({type(exc).__name__})"
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
