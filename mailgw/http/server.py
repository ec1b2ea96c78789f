"""The HTTP listener: uvicorn's Server on the daemon's own event loop.

The daemon owns SIGTERM and SIGINT (mailgw.app.serve stops every role in order), so
uvicorn must not take them: `uvicorn.Server.serve` wraps its run in `capture_signals()`,
which in the main thread replaces the handlers with `signal.signal` for the whole run;
here that context manager does nothing. The socket is bound here, before uvicorn sees
it, so a port in use is the operator's one line (mailgw.errors.listen_error) rather than
uvicorn's `sys.exit`. uvicorn's own logging set-up, access log, proxy-header handling
(FORWARDED_ALLOW_IPS would trust 127.0.0.1 by default), lifespan and `server:` header
are off: mailgw.http.middleware does those that are wanted, mailgw.http.protocol the
limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn

from mailgw.errors import listen_error
from mailgw.http import protocol
from mailgw.http.middleware import ASGIApp, wrap
from mailgw.ops.config_types import split_hostport

log = structlog.get_logger("mailgw.http")

STOP_TIMEOUT = 2  # seconds requests in flight get once the listener is closed
HEADERS = [("connection", "close"), ("cache-control", "no-store"),
           ("x-content-type-options", "nosniff")]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.bound = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's handlers stay: it stops this server itself

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.bound.set()


class HttpServer:
    """One ASGI application served on [http] listen, with the listener's limits."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: list[str] | None = None,
                 max_connections: int = 32, max_per_client: int = 8,
                 body_timeout: float = 30.0):
        self.trusted_proxies = list(trusted_proxies or [])
        guard = protocol.Guard(max_connections, max_per_client,
                               protocol.parse_networks(self.trusted_proxies))
        self.protocol = type("ListenerProtocol", (protocol.GuardedH11Protocol,),
                             {"guard": guard})
        self.config = uvicorn.Config(
            wrap(app, self.trusted_proxies, body_timeout), http=self.protocol, ws="none",
            lifespan="off", interface="asgi3", log_config=None, log_level="error",
            access_log=False, proxy_headers=False, server_header=False, headers=HEADERS,
            timeout_graceful_shutdown=STOP_TIMEOUT,
            h11_max_incomplete_event_size=2 * protocol.MAX_HEAD)
        self.sock: socket.socket | None = None
        self.server: _Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int] | None:
        if self.sock is None or self.sock.fileno() < 0:
            return None
        host, port = self.sock.getsockname()[:2]
        return host, port

    async def start(self, listen: str) -> None:
        self.sock = await _bind(listen)
        self.server = _Server(self.config)
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        bound = asyncio.create_task(self.server.bound.wait())
        await asyncio.wait({self.task, bound}, return_when=asyncio.FIRST_COMPLETED)
        if not bound.done():
            bound.cancel()
            self.task.result()  # uvicorn ended before serving: its error, if any
            raise RuntimeError("the HTTP server ended before it served")
        log.info("http_listening", address=self.address,
                 trusted_proxies=self.trusted_proxies or None)

    async def stop(self) -> None:
        """Close the listener, give requests in flight STOP_TIMEOUT, then cut them."""
        if self.server is None or self.task is None:
            return
        self.server.should_exit = True
        done, _ = await asyncio.wait({self.task}, timeout=STOP_TIMEOUT + 1)
        if not done:
            self.server.force_exit = True
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=1)
        if self.sock is not None:
            self.sock.close()


async def _bind(listen: str) -> socket.socket:
    """A listening socket on `listen`'s first address (as asyncio would bind it)."""
    host, port = split_hostport(listen)
    loop = asyncio.get_running_loop()
    try:
        infos: list[Any] = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise listen_error("http.listen", listen, exc) from None
    return sock
