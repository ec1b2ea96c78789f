"""IMAP intake: read mail from one or more mailboxes and hand it to the same intake as SMTP.

One task per configured mailbox (`[[imap.mailboxes]]`); a mailbox that fails never stops
the others. Each task runs this loop:

    connect (implicit TLS | STARTTLS | plain on loopback) → LOGIN → SELECT
    scan:  UID SEARCH UNDELETED → UID FETCH (RFC822.SIZE) → for each message:
           too big → move to rejected (never fetched)
           else UID FETCH BODY.PEEK[] → intake.handle (commits) → move:
               proven, or bounce/auto-reply → done;  unproven → rejected
               our own exception → stays in place, retried later with back-off
    wait:  IDLE (re-issued every `idle_renew`) or, without IDLE, `poll_interval`
    any error → drop the client, back off with jitter, connect again

The key of a message is (mailbox, UIDVALIDITY, UID). A message is moved only after intake
returned, so a crash between the commit and the move reads it again after the restart;
intake's idempotency (Message-ID, else a hash of the bytes) turns that second reading into
the first answer, without a second job or a second acknowledgement.

The IMAP conversation itself (bounded calls, STARTTLS, IDLE) is :mod:`.client`'s.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from mailgw.imap.client import IdleRefused, ImapClient, ImapError, LoginRefused, is_loopback
from mailgw.intake.service import Envelope, Intake, IntakeResult
from mailgw.ops.config import MailboxSettings, Settings

log = structlog.get_logger("mailgw.imap")


class MailboxRefused(Exception):
    """The configuration of this mailbox cannot be served as it is (logged, task ends)."""


@dataclass
class _Retry:
    attempts: int
    due: float  # time.monotonic()


class MailboxPoller:
    """Serves one mailbox until `stop` is set."""

    BACKOFF_FIRST = 1.0  # seconds before the first reconnect; doubles, with jitter
    BACKOFF_MAX = 60.0
    LOGIN_BACKOFF_MAX = 600.0  # a refused LOGIN: slow down, or the account gets locked
    RETRY_FIRST = 5.0  # a message our intake failed on (or could not move): first retry
    RETRY_MAX = 300.0

    def __init__(self, box: MailboxSettings, settings: Settings, intake: Intake, *,
                 ssl_context: ssl.SSLContext | None = None,
                 on_committed: Callable[[], None] | None = None) -> None:
        self.box = box
        self.settings = settings
        self.intake = intake
        self.ssl_context = ssl_context
        self.on_committed = on_committed
        address = (settings.gateway.voice_address if box.channel == "voice"
                   else settings.gateway.fax_address)
        self.envelope = Envelope(mail_from=None, rcpt_tos=(address,))
        self.log = log.bind(mailbox=box.mailbox, user=box.user, host=box.host, port=box.port)
        self.uidvalidity: int | None = None
        self._moves: dict[tuple[int, int], str] = {}  # committed, not yet moved: → target
        self._retries: dict[tuple[int, int], _Retry] = {}  # our failures, by key
        self._stop: asyncio.Event = asyncio.Event()
        self._idle_broken = False
        self._failures = 0  # consecutive session failures, for the back-off

    # -- the outer loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            self._check_config()
        except MailboxRefused as exc:
            self.log.error("imap_mailbox_refused", reason=str(exc))
            return
        while not stop.is_set():
            client: ImapClient | None = None
            try:
                client = await self._connect()
                await self._serve(client)
            except asyncio.CancelledError:
                if client is not None:
                    client.abandon()
                raise
            except Exception as exc:  # noqa: BLE001 - any error: rebuild the client
                if client is not None:
                    client.abandon()
                if stop.is_set():
                    break
                self._failures += 1
                cap = self.BACKOFF_MAX
                if isinstance(exc, LoginRefused):
                    cap = self.LOGIN_BACKOFF_MAX
                delay = min(cap, self.BACKOFF_FIRST * 2 ** (self._failures - 1))
                delay *= random.uniform(0.75, 1.25)
                self.log.warning("imap_error", reason=_reason(exc), retry_in=round(delay, 2),
                                 failures=self._failures)
                await self._sleep(delay)
            else:
                await self._close(client)
        self.log.info("imap_stopped")

    def _check_config(self) -> None:
        box = self.box
        if box.tls not in ("implicit", "starttls", "none"):
            raise MailboxRefused(f"tls = {box.tls!r}: expected implicit, starttls or none")
        if box.tls == "none" and not is_loopback(box.host):
            raise MailboxRefused("tls = \"none\" is only allowed for a loopback host "
                                 "(the password would cross the network in clear); "
                                 "use implicit or starttls")
        if not box.user:
            raise MailboxRefused("no user")
        if not box.password and not box.password_file:
            raise MailboxRefused("no password or password_file")
        self._password()

    def _password(self) -> str:
        if self.box.password:
            return self.box.password
        try:
            text = Path(self.box.password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise MailboxRefused(f"password_file {self.box.password_file}: "
                                 f"{exc.strerror or exc}") from None
        secret = text.strip("\r\n")
        if not secret:
            raise MailboxRefused(f"password_file {self.box.password_file} is empty")
        return secret

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # -- one session -------------------------------------------------------------------------

    async def _connect(self) -> ImapClient:
        box = self.box
        return await ImapClient.connect(host=box.host, port=box.port, tls=box.tls,
                                        timeout=box.timeout, user=box.user,
                                        password=self._password, ssl_context=self.ssl_context,
                                        log=self.log)

    async def _serve(self, client: ImapClient) -> None:
        box = self.box
        for folder in (box.done_mailbox, box.rejected_mailbox):
            await client.create(folder)
        uidvalidity, exists = await client.select(box.mailbox)
        if self.uidvalidity is not None and uidvalidity != self.uidvalidity:
            self.log.warning("imap_uidvalidity_changed", old=self.uidvalidity, new=uidvalidity,
                             note="messages are read again; intake answers duplicates")
        if uidvalidity != self.uidvalidity:
            self._moves.clear()
            self._retries.clear()
        self.uidvalidity = uidvalidity
        idle = client.has_capability("IDLE") and not self._idle_broken
        self.log.info("imap_connected", uidvalidity=uidvalidity, tls=box.tls, idle=idle,
                      move=client.has_capability("MOVE"), exists=exists)
        while not self._stop.is_set():
            worked = await self._scan(client, uidvalidity)
            self._failures = 0  # a session that scans is healthy: back-off starts afresh
            if worked or client.exists_seen or self._stop.is_set():
                continue
            await self._wait(client)

    # -- reading -----------------------------------------------------------------------------

    async def _scan(self, client: ImapClient, uidvalidity: int) -> bool:
        """Process what is in the mailbox; True when something was done (scan again)."""
        client.exists_seen = False
        uids = await client.search_uids()
        present = set(uids)
        for book in (self._moves, self._retries):  # forget what someone else took away
            for key in [k for k in book if k[1] not in present]:
                del book[key]
        now = time.monotonic()
        todo = [u for u in uids if (r := self._retries.get((uidvalidity, u))) is None
                or r.due <= now]
        if not todo:
            return False
        sizes = await client.sizes(todo)
        limit = self.settings.smtp.max_message_size
        progressed = False
        for uid in todo:
            if self._stop.is_set():
                break
            key = (uidvalidity, uid)
            if key in self._moves:  # committed earlier, the move failed: only move
                progressed = True
                await self._move(client, key, self._moves[key])
                continue
            size = sizes.get(uid)
            if size is None:
                continue  # gone meanwhile (another client moved it)
            progressed = True
            if size > limit:
                self.log.warning("imap_message_too_large", uid=uid, size=size, limit=limit,
                                 to=self.box.rejected_mailbox)
                self._moves[key] = self.box.rejected_mailbox
                await self._move(client, key, self.box.rejected_mailbox)
                continue
            raw = await client.fetch(uid, size)
            if raw is None:
                continue
            try:
                result = await asyncio.to_thread(self.intake.handle, raw, self.envelope)
            except Exception as exc:  # noqa: BLE001 - ours: leave the mail, try again later
                delay = self._retry_later(key)
                self.log.error("imap_intake_failed", uid=uid, uidvalidity=uidvalidity,
                               error=_reason(exc), retry_in=round(delay, 1), exc_info=True)
                continue
            if result.deferred:  # a guessed account: its password checks are spent for now
                delay = self._retry_later(key)
                self.log.info("imap_message_deferred", uid=uid, uidvalidity=uidvalidity,
                              retry_in=round(delay, 1))
                continue
            target = self._target(result)
            self._moves[key] = target
            self.log.info("imap_message", uid=uid, uidvalidity=uidvalidity, code=result.code,
                          proven=result.proven, ignored=result.ignored,
                          duplicate=result.duplicate, job_ids=list(result.job_ids),
                          to=target)
            if self.on_committed is not None:
                self.on_committed()
            await self._move(client, key, target)
        return progressed

    def _target(self, result: IntakeResult) -> str:
        if result.ignored:
            return self.box.done_mailbox  # bounce, auto-reply: never answered, kept
        if not result.proven:
            return self.box.rejected_mailbox  # unknown sender, wrong password: never answered
        return self.box.done_mailbox

    # -- moving ------------------------------------------------------------------------------

    async def _move(self, client: ImapClient, key: tuple[int, int], target: str) -> None:
        ok, why = await client.move(key[1], target)
        if ok:
            self._moves.pop(key, None)
            self._retries.pop(key, None)
            return
        delay = self._retry_later(key)
        self.log.error("imap_move_failed", uid=key[1], to=target, reason=why,
                       retry_in=round(delay, 1))

    def _retry_later(self, key: tuple[int, int]) -> float:
        earlier = self._retries.get(key)
        attempts = earlier.attempts + 1 if earlier else 1
        delay = min(self.RETRY_MAX, self.RETRY_FIRST * 2 ** (attempts - 1))
        delay *= random.uniform(0.9, 1.1)
        self._retries[key] = _Retry(attempts, time.monotonic() + delay)
        return delay

    # -- waiting -----------------------------------------------------------------------------

    def _wait_limit(self, longest: float) -> float:
        """How long to wait: at most `longest`, less when a retry falls due earlier."""
        if self._retries:
            soonest = min(r.due for r in self._retries.values()) - time.monotonic()
            return max(0.05, min(longest, soonest))
        return longest

    async def _wait(self, client: ImapClient) -> None:
        if not client.has_capability("IDLE") or self._idle_broken:
            await client.wait_either(self._stop, self._wait_limit(self.box.poll_interval))
            if client.lost.is_set():
                raise ImapError("connection lost while waiting to poll")
            return
        try:
            await client.idle(self._stop, self._wait_limit(self.box.idle_renew))
        except IdleRefused as exc:
            self._idle_broken = True  # advertised but refused: poll instead
            self.log.warning("imap_idle_refused", reason=str(exc), poll=self.box.poll_interval)

    # -- closing -----------------------------------------------------------------------------

    async def _close(self, client: ImapClient) -> None:
        """Polite end on stop: LOGOUT (briefly), then drop the connection."""
        try:
            await client.logout(timeout=min(self.box.timeout, 2.0))
        except Exception as exc:  # noqa: BLE001 - we are leaving anyway
            if not client.lost.is_set():  # the server hung up after its BYE: as expected
                self.log.debug("imap_logout_failed", reason=_reason(exc))
        client.abandon()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError | ssl.SSLError | TimeoutError) and not str(exc):
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return text[:300]


def start_pollers(settings: Settings, intake: Intake, stop: asyncio.Event, *,
                  on_committed: Callable[[], None] | None = None,
                  ssl_context: ssl.SSLContext | None = None) -> list[asyncio.Task[None]]:
    """One task per configured mailbox."""
    boxes = settings.imap.all_mailboxes()
    if not boxes:
        log.warning("imap_no_mailboxes",
                    reason="role imap without [imap] user or [[imap.mailboxes]]")
    tasks: list[asyncio.Task[None]] = []
    for box in boxes:
        poller = MailboxPoller(box, settings, intake, on_committed=on_committed,
                               ssl_context=ssl_context)
        name = f"imap:{box.user}@{box.host}:{box.port}/{box.mailbox}"
        tasks.append(asyncio.create_task(poller.run(stop), name=name))
    return tasks
