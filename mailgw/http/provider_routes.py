"""The drivers' routes: POST /callbacks/<driver>/<rest>, GET /media/<driver>/<token>.

A driver that hears back from its provider declares them (`callback_routes`); the request
is handed to it as received (mailgw.dispatch.drivers.base.CallbackRequest: the raw target,
the rest of the path still percent-encoded, the header fields, the body within the
driver's `max_body`), and the driver authenticates it. This module knows no provider. The
provider retries on 5xx: a handler that takes over HANDLER_TIMEOUT answers 503, one that
fails 500 (logged).
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mailgw.dispatch.drivers.base import CALLBACKS, MEDIA, CallbackRequest, Driver
from mailgw.http.body import read_body

log = structlog.get_logger("mailgw.http")

HANDLER_TIMEOUT = 20.0  # a callback handler's answer


def routes(callbacks: dict[str, Driver]) -> list[BaseRoute]:
    async def callback(request: Request) -> Response:
        return await _handle(callbacks, CALLBACKS, request)

    async def media(request: Request) -> Response:
        return await _handle(callbacks, MEDIA, request)

    # {token}: the access log hides a parameter so named (it carries the driver's secret).
    return [Route("/callbacks/{driver}/{token:path}", callback, methods=["POST"]),
            Route("/media/{driver}/{token:path}", media, methods=["GET", "HEAD"])]


async def _handle(callbacks: dict[str, Driver], kind: str, request: Request) -> Response:
    raw_path = bytes(request.scope.get("raw_path") or request.url.path.encode())
    path = raw_path.decode("latin-1")
    query = bytes(request.scope.get("query_string", b"")).decode("latin-1")
    target = f"{path}?{query}" if query else path
    name, _, rest = path[len(kind) + 2:].partition("/")
    driver = callbacks.get(name)
    if driver is None or not rest or kind not in driver.callback_routes:
        return PlainTextResponse("not found\n", 404)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}
    if kind == MEDIA:
        call = driver.handle_media(CallbackRequest(request.method, target, rest, headers, b""))
    else:
        body = await read_body(request, driver.max_body)
        if isinstance(body, Response):
            return body
        call = driver.handle_callback(
            CallbackRequest(request.method, target, rest, headers, body))
    try:
        status, data, ctype, extra = await asyncio.wait_for(call, HANDLER_TIMEOUT)
    except TimeoutError:
        return PlainTextResponse("try again later\n", 503)
    except Exception:  # noqa: BLE001 - the provider retries on 5xx
        log.exception("callback_failed", driver=name)
        return PlainTextResponse("internal error\n", 500)
    return Response(data, status, headers=extra, media_type=ctype)
