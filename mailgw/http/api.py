"""The optional HTTP endpoint: GET /metrics (Prometheus) and GET /healthz, on the daemon's loop.

A deliberately small HTTP/1.1 server (no framework): one request per connection, the
request head limited to 8 KB and 5 seconds (the whole head: a trickle is cut as surely as
silence), a cap on concurrent connections and a smaller one per client address (so a
slowloris from one address cannot keep /healthz from another), `Connection: close` on
every answer. It is meant for a scraper and a health checker on a
trusted network; bind it to loopback or a management interface.

Drivers that hear back from a provider are registered by name (`callbacks`): the routes a
driver declares (`callback_routes`: `POST /callbacks/<name>/<rest>`, the body bounded by
its `max_body` and BODY_TIMEOUT; `GET /media/<name>/<token>`) are handed to it untouched;
the driver authenticates the request itself. This module knows no provider.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from mailgw.dispatch.drivers.base import MEDIA, CallbackRequest, Driver
from mailgw.errors import listen_error
from mailgw.ops import metrics
from mailgw.ops.config import split_hostport
from mailgw.smtp.flood import client_key
from mailgw.store.metrics import probe_store

if TYPE_CHECKING:
    from mailgw.app import App

log = structlog.get_logger("mailgw.http")

MAX_HEAD = 8192  # bytes of request line + headers
HEAD_TIMEOUT = 5.0  # seconds to send them
WRITE_TIMEOUT = 10.0
STORE_TIMEOUT = 5.0  # the store's queries for one /metrics or /healthz
MAX_CONNECTIONS = 32
MAX_PER_CLIENT = 8  # connections at once from one client address (IPv6: its /64)
BODY_TIMEOUT = 30.0  # seconds to send a callback's whole body
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 21\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
        b"too many connections\n")
HANDLER_TIMEOUT = 20.0  # a callback handler's answer

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()


def _text(status: int, message: str, **extra: str) -> Response:
    return Response(status, (message + "\n").encode(), extra=tuple(extra.items()))


def _headers(head: bytes) -> dict[str, str]:
    """The request's header fields, names lower-cased (the last one wins)."""
    out: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            out[name.strip().lower()] = value.strip()
    return out


class HttpApi:
    """Serves one App's /metrics and /healthz."""

    def __init__(self, app: App):
        self.app = app
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.per_client: Counter[str] = Counter()
        self.callbacks: dict[str, Driver] = {}  # by driver name

    @property
    def address(self) -> tuple[str, int] | None:
        if self.server is None or not self.server.sockets:
            return None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self, listen: str) -> None:
        host, port = split_hostport(listen)
        try:
            self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD,
                                                     reuse_address=True)
        except OSError as exc:
            raise listen_error("http.listen", listen, exc) from None
        log.info("http_listening", address=self.address)

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        try:
            await asyncio.wait_for(self.server.wait_closed(), timeout=2)
        except TimeoutError:
            pass

    # -- one connection ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        key = client_key(str(peer[0]) if isinstance(peer, tuple) and peer else None)
        if len(self.writers) >= MAX_CONNECTIONS or self.per_client[key] >= MAX_PER_CLIENT:
            writer.write(BUSY)
            writer.close()
            return
        self.writers.add(writer)
        self.per_client[key] += 1
        head_only = False
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except TimeoutError:
                response = _text(408, "request head not received in time")
            except asyncio.LimitOverrunError:
                response = _text(431, f"request head over {MAX_HEAD} bytes")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            else:
                head_only = head.startswith(b"HEAD ")
                response = await self._route(head, reader)
            await self._write(writer, response, head_only)
        except (ConnectionError, TimeoutError):
            writer.transport.abort()  # a client that does not read: close() would wait for it
        except Exception:  # noqa: BLE001 - one bad request must not end the endpoint
            log.exception("http_error")
        finally:
            self.writers.discard(writer)
            self.per_client[key] -= 1
            if self.per_client[key] <= 0:
                del self.per_client[key]
            writer.close()

    async def _write(self, writer: asyncio.StreamWriter, r: Response, head_only: bool) -> None:
        lines = [f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Error')}",
                 f"Content-Type: {r.content_type}", f"Content-Length: {len(r.body)}",
                 "Connection: close", "Cache-Control: no-store",
                 "X-Content-Type-Options: nosniff",
                 *(f"{k}: {v}" for k, v in r.extra)]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(r.body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def _route(self, head: bytes, reader: asyncio.StreamReader | None = None
                     ) -> Response:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[1].startswith("/"):
            return _text(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            return _text(505, "HTTP/1.0 or HTTP/1.1 only")
        path = target.split("?", 1)[0]
        if path.startswith(("/callbacks/", "/media/")):
            return await self._driver_route(method, target, path, head, reader)
        if method not in ("GET", "HEAD"):
            return _text(405, "GET or HEAD only", Allow="GET, HEAD")
        if path == "/metrics":
            body = await metrics.render(self.app.store, STORE_TIMEOUT)
            return Response(200, body, metrics.CONTENT_TYPE)
        if path == "/healthz":
            status, report = await self.health()
            return Response(status, json.dumps(report, indent=1).encode() + b"\n",
                            "application/json")
        if path == "/":
            return _text(200, "mailgw: GET /metrics (Prometheus), GET /healthz")
        return _text(404, "not found (try /metrics or /healthz)")

    # -- driver callbacks and media ---------------------------------------------------------

    async def _driver_route(self, method: str, target: str, path: str, head: bytes,
                            reader: asyncio.StreamReader | None) -> Response:
        kind, _, tail = path[1:].partition("/")
        name, _, rest = tail.partition("/")
        handler = self.callbacks.get(name)
        if handler is None or not rest or kind not in handler.callback_routes:
            return _text(404, "not found")
        headers = _headers(head)
        if kind == MEDIA:
            if method not in ("GET", "HEAD"):
                return _text(405, "GET or HEAD only", Allow="GET, HEAD")
            request = CallbackRequest(method, target, rest, headers, b"")
            call = handler.handle_media(request)
        else:
            if method != "POST":
                return _text(405, "POST only", Allow="POST")
            if reader is None:
                return _text(400, "no body")
            body = await self._read_body(reader, headers, handler.max_body)
            if isinstance(body, Response):
                return body
            call = handler.handle_callback(CallbackRequest(method, target, rest, headers, body))
        try:
            status, data, ctype, extra = await asyncio.wait_for(call, HANDLER_TIMEOUT)
        except TimeoutError:
            return _text(503, "try again later")
        except Exception:  # noqa: BLE001 - the provider retries on 5xx
            log.exception("callback_failed", driver=name)
            return _text(500, "internal error")
        return Response(status, data, ctype, tuple(extra.items()))

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str],
                         limit: int) -> bytes | Response:
        """The request body (Content-Length or chunked), at most `limit` bytes."""
        too_big = _text(413, f"body over {limit} bytes")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):  # the whole body, not each read
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    out = bytearray()
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            await reader.readuntil(b"\r\n")
                            return bytes(out)
                        if len(out) + size > limit:
                            return too_big
                        out += await reader.readexactly(size + 2)
                        del out[-2:]
                length = headers.get("content-length", "")
                if not length.isdigit():
                    return _text(411, "Content-Length required")
                if int(length) > limit:
                    return too_big
                return await reader.readexactly(int(length))
        except TimeoutError:
            return _text(408, "request body not received in time")
        except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            return _text(400, "malformed or incomplete body")

    # -- health -----------------------------------------------------------------------------

    async def health(self) -> tuple[int, dict[str, Any]]:
        """200 when every check passes, else 503 naming the failing checks."""
        app = self.app
        checks: dict[str, dict[str, Any]] = {}
        age: float | None = None
        try:
            age = await asyncio.wait_for(
                asyncio.to_thread(probe_store, app.store, STORE_TIMEOUT), STORE_TIMEOUT)
            checks["store"] = {"ok": True, "dialect": app.store.dialect}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            error = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            checks["store"] = {"ok": False, "error": error}
        if "notify" in app.roles:
            threshold = app.settings.http.health_outbox_age
            if age is None:
                checks["outbox"] = {"ok": False, "error": "the store did not answer"}
            else:
                checks["outbox"] = {"ok": age < threshold,
                                    "oldest_unsent_age_seconds": round(age, 3),
                                    "threshold_seconds": threshold}
        listeners: dict[str, Any] = {"ok": True}
        if "smtp" in app.roles:
            server = app.smtp_server
            bound = server is not None and server.is_serving() and bool(server.sockets)
            address = app.smtp_address
            listeners["smtp"] = f"{address[0]}:{address[1]}" if bound and address else None
            listeners["ok"] = bound
        checks["listeners"] = listeners
        failing = [name for name, check in checks.items() if not check["ok"]]
        report = {"status": "fail" if failing else "ok", "failing": failing,
                  "roles": list(app.roles), "checks": checks}
        return (503 if failing else 200), report
