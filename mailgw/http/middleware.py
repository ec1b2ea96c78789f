"""What every HTTP request goes through before its route: the client's true address, a
deadline for its body, and one access-log line without secrets.

* Behind a reverse proxy, X-Forwarded-For and X-Forwarded-Proto are believed only from a
  peer in `[http] trusted_proxies` (uvicorn's ProxyHeadersMiddleware; with none, the
  headers are ignored and the client is the peer).
* The whole request body must arrive within `[http] body_timeout` (408): a trickled
  upload cannot hold a connection longer than that, whatever the route reads it with.
* `http_request` (method, path, status, duration_ms, client; `via` the proxy when the
  client came from X-Forwarded-For) is logged through structlog. Query values under
  secret-looking names (pass, password, token…) and path parameters so named (a driver's
  callback token) are replaced; header fields (Authorization, Cookie) are never logged.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

import structlog
from starlette.exceptions import HTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailgw.ops.logs import SECRET_KEYS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = structlog.get_logger("mailgw.http")

HIDDEN = "***"
MAX_PATH = 512  # characters of path and query logged


def wrap(app: ASGIApp, trusted_proxies: list[str], body_timeout: float) -> ASGIApp:
    """`app` behind the body deadline, the access log and, with trusted proxies, theirs."""
    inner: ASGIApp = BodyDeadline(app, body_timeout)
    if trusted_proxies:
        inner = ProxyHeadersMiddleware(inner, trusted_hosts=trusted_proxies)  # type: ignore[arg-type,assignment]
    return AccessLog(inner)


class BodyDeadline:
    """The request body as a whole within `timeout` seconds of the request head."""

    def __init__(self, app: ASGIApp, timeout: float):
        self.app, self.timeout = app, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:  # after the body: a wait for the disconnect, not bounded here
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "request body not received in time") from None
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, timed_receive, send)


class AccessLog:
    """One `http_request` event per request, after its answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        peer = _host(scope.get("client"))  # before a trusted proxy's X-Forwarded-For
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # Starlette names fields in lower case; clients that look a name up
                # verbatim (urllib's dict of headers) expect Content-Type as it was.
                message["headers"] = [(bytes(k).title(), v) for k, v in
                                      message.get("headers", ())]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except Exception:
            status = status or 500
            raise
        finally:
            log.info("http_request", **request_fields(scope, peer), status=status,
                     duration_ms=round((time.monotonic() - start) * 1000, 1))


def request_fields(scope: Scope, peer: str | None) -> dict[str, Any]:
    """method, path (secrets hidden), client, and `via` the proxy it came through."""
    path = str(scope.get("path", ""))
    for name, value in dict(scope.get("path_params") or {}).items():
        if SECRET_KEYS.search(name) and value:  # the route has run: its parameters are known
            path = path.replace(str(value), HIDDEN)
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    if query:
        path += "?" + hide_query(query)
    fields: dict[str, Any] = {"method": scope.get("method"), "path": path[:MAX_PATH],
                              "client": _host(scope.get("client"))}
    if peer and peer != fields["client"]:  # ProxyHeadersMiddleware replaced the client
        fields["via"] = peer
    return fields


def hide_query(query: str) -> str:
    """The query as sent, each value under a secret-looking name replaced (names are read
    decoded and split on & and ;, so `p%61ss=` or `a=1;pass=` hide their value too)."""
    parts = []
    for part in re.split(r"[&;]", query):
        name, sep, _ = part.partition("=")
        secret = sep and SECRET_KEYS.search(unquote_plus(name))
        parts.append(f"{name}={HIDDEN}" if secret else part)
    return "&".join(parts)


def _host(addr: Any) -> str | None:
    return str(addr[0]) if isinstance(addr, list | tuple) and addr else None
