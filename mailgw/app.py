"""Wires the roles (smtp, imap, dispatch, notify, http) onto one event loop and one store."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from mailgw.accounts.accounts import AuthCache
from mailgw.dispatch.dispatcher import Dispatcher
from mailgw.dispatch.drivers.base import Driver
from mailgw.dispatch.setup import callback_handlers, make_driver
from mailgw.documents import sandbox
from mailgw.errors import EX_CONFIG, OperatorError
from mailgw.http import asgi
from mailgw.http.server import HttpServer
from mailgw.imap.mailbox import start_pollers
from mailgw.intake.service import Intake
from mailgw.jobs.service import Jobs
from mailgw.notify.outbox import OutboxSender
from mailgw.notify.received import run_receiving
from mailgw.notify.render import Renderer, renderer_for
from mailgw.ops import recovery
from mailgw.ops.config import Settings
from mailgw.smtp.server import Connections, GatewayHandler, start_smtp
from mailgw.store import Store

log = structlog.get_logger("mailgw")


def prepare_store(settings: Settings, *, migrate: bool = True) -> Store:
    """Open the store and bring its schema to the current revision; a store that cannot be
    reached raises OperatorError (one line for the operator)."""
    store = Store(settings.store.url, busy_timeout=settings.store.busy_timeout)
    store.probe()
    if migrate:
        store.upgrade()
    return store


def node_id() -> str:
    """The lease owner: host, boot id, PID and start time (mailgw.ops.holders)."""
    return recovery.owner_id()


@dataclass
class App:
    settings: Settings
    store: Store
    roles: tuple[str, ...]
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    smtp_server: asyncio.Server | None = None
    dispatcher: Dispatcher | None = None
    outbox: OutboxSender | None = None
    intake: Intake | None = None
    auth_cache: AuthCache | None = None
    connections: Connections | None = None
    jobs: Jobs | None = None  # the jobs service (every role; the HTTP routes use it)
    http: HttpServer | None = None
    callbacks: dict[str, Driver] = field(default_factory=dict)  # served by role http
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False  # announced "ready"; an app that never was stops without a word

    @property
    def smtp_address(self) -> tuple[str, int] | None:
        if self.smtp_server is None or not self.smtp_server.sockets:
            return None
        host, port = self.smtp_server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def http_address(self) -> tuple[str, int] | None:
        return self.http.address if self.http is not None else None

    async def start(self) -> None:
        s = self.settings
        owner = node_id()
        _threads_for_every_role(s)
        # Before anything claims: a crashed process of this host holds nothing any more.
        await asyncio.to_thread(recovery.release_dead_holders, self.store)
        renderer = renderer_for(s)
        jobs = self.jobs = Jobs(self.store, s, renderer)  # one owner of a job's life
        if "notify" in self.roles:
            self.outbox = OutboxSender(self.store, s.notify, owner=owner)
            self.tasks.append(asyncio.create_task(self.outbox.run(self.stop_event)))
        if "dispatch" in self.roles:
            outbox_event = self.outbox.wakeup if self.outbox else None
            self.dispatcher = Dispatcher(self.store, s, make_driver(s, self.store), jobs,
                                         owner=owner, on_outbox=outbox_event)
            self.tasks.append(asyncio.create_task(self.dispatcher.run(self.stop_event)))
            if self.dispatcher.driver.receive_interval > 0:  # faxes sent to our numbers
                self.tasks.append(asyncio.create_task(
                    run_receiving(self.dispatcher.driver, self.stop_event)))
        if "imap" in self.roles:
            if self.intake is None:
                self.intake = Intake(self.store, s, renderer, jobs=jobs)
            self.tasks += start_pollers(s, self.intake, self.stop_event, on_committed=self.wake)
        if {"smtp", "imap", "http"} & set(self.roles):
            # Warm document workers now, so the first mails do not pay their start.
            await asyncio.to_thread(sandbox.prestart)
        if "smtp" in self.roles:
            if self.intake is None:
                self.intake = Intake(self.store, s, renderer, jobs=jobs)
            handler = GatewayHandler(self.intake, on_accepted=self.wake)
            self.auth_cache = AuthCache()
            await asyncio.to_thread(self._refresh_auth)
            self.tasks.append(asyncio.create_task(self._auth_refresh_loop()))
            self.smtp_server, self.connections = await start_smtp(s.smtp, handler,
                                                                  self.auth_cache)
        if "http" in self.roles:
            await self._start_http(renderer, jobs)
        elif s.http.listen:
            log.warning("http_listen_unused", listen=s.http.listen,
                        reason="role http is not among the roles")
        self.ready = True
        log.info("ready", roles=list(self.roles), smtp=self.smtp_address,
                 http=self.http_address, store=self.store.dialect, driver=s.dispatch.driver)

    async def _start_http(self, renderer: Renderer, jobs: Jobs) -> None:
        s = self.settings
        if not s.http.listen:
            raise OperatorError("http.listen: role http needs an address to listen on",
                                EX_CONFIG)
        if self.intake is None:
            self.intake = Intake(self.store, s, renderer, jobs=jobs)
        self.callbacks = callback_handlers(
            s, self.store, self.dispatcher.driver if self.dispatcher else None)
        self.http = HttpServer(asgi.build(self, self.callbacks),
                               trusted_proxies=s.http.trusted_proxies,
                               max_connections=s.http.max_connections,
                               max_per_client=s.http.max_per_client,
                               body_timeout=s.http.body_timeout)
        await self.http.start(s.http.listen)

    def _refresh_auth(self) -> None:
        if self.auth_cache is not None:
            with self.store.read() as session:
                self.auth_cache.refresh(session)

    async def _auth_refresh_loop(self, every: float = 30.0) -> None:
        """Accounts change from other processes (`mailgw account …`): reload now and then."""
        while not self.stop_event.is_set():
            try:
                await asyncio.wait_for(self.stop_event.wait(), timeout=every)
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self._refresh_auth)
            except Exception:  # noqa: BLE001 - a store hiccup must not end the listener
                log.exception("auth_refresh_failed")

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
        if self.outbox is not None:
            self.outbox.wake()

    async def stop(self) -> None:
        """Stop taking mail, let calls in flight finish within the grace, release the rest."""
        if self.ready:
            log.info("stopping", grace_seconds=self.settings.serve.grace_seconds)
        if self.smtp_server is not None:
            self.smtp_server.close()
            if self.connections is not None:
                self.connections.close_all()
            try:
                await asyncio.wait_for(self.smtp_server.wait_closed(), timeout=2)
            except TimeoutError:
                pass
        self.stop_event.set()
        if self.dispatcher is not None:
            await self.dispatcher.drain(max(self.settings.serve.grace_seconds - 2, 0.5))
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=2)
        for task in self.tasks:
            task.cancel()
        if self.http is not None:
            await self.http.stop()
        drivers = {id(d): d for d in [*self.callbacks.values(),
                                      *([self.dispatcher.driver] if self.dispatcher else [])]}
        for driver in drivers.values():
            await driver.close()
        if self.ready:
            log.info("stopped")


async def serve(settings: Settings, roles: tuple[str, ...]) -> int:
    """Run until SIGTERM or SIGINT; exit 0 after a clean stop."""
    store = await asyncio.to_thread(prepare_store, settings)
    app = App(settings, store, roles)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
    except Exception:
        await app.stop()  # a listener that could not bind: the roles started before it end
        store.dispose()
        raise
    _sd_notify("READY=1")
    watchdog = _watchdog_interval()
    pinger = asyncio.create_task(_watchdog_loop(watchdog)) if watchdog else None
    await stop.wait()
    _sd_notify("STOPPING=1")
    await app.stop()
    if pinger is not None:
        pinger.cancel()
    store.dispose()
    return 0


def _sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) where we are; a no-op outside systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(path)
            sock.send(state.encode())
    except OSError:
        log.warning("sd_notify_failed", state=state)


def _watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (from $WATCHDOG_USEC), when it is meant for us."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) <= 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


async def _watchdog_loop(interval: float) -> None:
    """WATCHDOG=1 from the event loop itself: a loop that hangs stops the pings."""
    while True:
        _sd_notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def _threads_for_every_role(s: Settings) -> None:
    """Each SMTP or IMAP mail holds a worker thread while it is parsed, counted and
    committed (a hostile PDF may take its whole sandbox time); asyncio's default pool is
    CPU count + 4 threads, so a few such mails would queue the dispatcher's heartbeats and
    the outbox behind them. Size the pool for every role at once."""
    need = (s.smtp.max_concurrent_data + len(s.imap.mailboxes) + 2 * s.dispatch.workers
            + 16)
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=max(32, need), thread_name_prefix="mailgw"))

