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

aioimaplib never turns a closed connection into an error and can hang on BYE during IDLE
(its issue #110): every call here is bounded by `timeout` and also ends as soon as the
connection is lost.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aioimaplib
import structlog

from mailgw.intake.service import Envelope, Intake, IntakeResult
from mailgw.ops.config import MailboxSettings, Settings

log = structlog.get_logger("mailgw.imap")

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_EXISTS = re.compile(rb"^\d+ EXISTS")
_BYE = re.compile(rb"^BYE\b")
_TROUBLE = re.compile(rb"^(BYE|NO|BAD)\b")


class ImapError(Exception):
    """Something went wrong with the session: drop the client and connect again."""


class MailboxRefused(Exception):
    """The configuration of this mailbox cannot be served as it is (logged, task ends)."""


@dataclass
class _Retry:
    attempts: int
    due: float  # time.monotonic()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            import base64

            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",")
                       + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP astring (aioimaplib sends arguments as they are)."""
    encoded = imap_utf7(name)
    if encoded and re.fullmatch(r"[A-Za-z0-9_.&,+\-/\[\]]+", encoded):
        return encoded
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: Any) -> str:
    """The server's status text of a response, for logs (never contains our password)."""
    lines = getattr(response, "lines", None) or []
    last = lines[-1] if lines else b""
    if isinstance(last, bytes | bytearray):
        return bytes(last).decode("utf-8", "replace")[:200]
    return str(last)[:200]


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
        self._lost = asyncio.Event()
        self._exists_seen = False
        self._stop: asyncio.Event = asyncio.Event()
        self._idle_broken = False
        self._failures = 0  # consecutive session failures, for the back-off
        self._leaving = False  # our own LOGOUT: its BYE is expected

    # -- the outer loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        try:
            self._check_config()
        except MailboxRefused as exc:
            self.log.error("imap_mailbox_refused", reason=str(exc))
            return
        while not stop.is_set():
            client: aioimaplib.IMAP4 | None = None
            try:
                client = await self._connect()
                await self._serve(client)
            except asyncio.CancelledError:
                self._abandon(client)
                raise
            except Exception as exc:  # noqa: BLE001 - any error: rebuild the client
                self._abandon(client)
                if stop.is_set():
                    break
                self._failures += 1
                cap = self.BACKOFF_MAX
                if isinstance(exc, _LoginRefused):
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

    async def _connect(self) -> aioimaplib.IMAP4:
        box = self.box
        context: ssl.SSLContext | None = None
        if box.tls != "none":
            context = self.ssl_context or ssl.create_default_context()
        self._lost = asyncio.Event()
        lost = self._lost
        self._leaving = False
        client = aioimaplib.IMAP4(host=box.host, port=box.port, timeout=box.timeout,
                                  conn_lost_cb=lambda _exc: lost.set(),
                                  ssl_context=context if box.tls == "implicit" else None)
        self._spy(client)
        try:
            await self._call(client.wait_hello_from_server(), "greeting")
            if box.tls == "starttls":
                assert context is not None
                await self._starttls(client, context)
            password = self._password()
            response = await self._call(client.login(box.user, password), "LOGIN")
            if response.result != "OK":
                raise _LoginRefused(f"LOGIN refused: {_text(response)}")
        except BaseException:
            self._abandon(client)  # the caller never sees this client: close it here
            raise
        return client

    def _spy(self, client: aioimaplib.IMAP4) -> None:
        """Notice EXISTS and BYE in any response (aioimaplib drops some untagged lines)."""
        protocol = client.protocol
        original = protocol._untagged_response

        def untagged(line: bytes) -> Any:
            text = line.replace(b"* ", b"", 1) if line.startswith(b"* ") else line
            if _EXISTS.match(text):
                self._exists_seen = True
            elif _BYE.match(text) and not self._leaving:  # our LOGOUT gets a BYE too
                self.log.info("imap_server_bye", text=text.decode("utf-8", "replace")[:200])
                self._lost.set()
            return original(line)

        protocol._untagged_response = untagged  # type: ignore[method-assign]

    async def _starttls(self, client: aioimaplib.IMAP4, context: ssl.SSLContext) -> None:
        """STARTTLS by hand (aioimaplib has none): never LOGIN in clear instead."""
        protocol = client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError("the server does not offer STARTTLS (tls = \"starttls\"); "
                            "not sending the password in clear")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call(protocol.execute(command), "STARTTLS")
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response)}")
        loop = asyncio.get_running_loop()
        transport = await self._call(loop.start_tls(protocol.transport, protocol, context,
                                                    server_hostname=self.box.host),
                                     "TLS handshake")
        protocol.transport = transport
        protocol.capabilities = set()
        await self._call(protocol.capability(), "CAPABILITY")  # forget what came in clear

    async def _serve(self, client: aioimaplib.IMAP4) -> None:
        box = self.box
        for folder in (box.done_mailbox, box.rejected_mailbox):
            await self._call(client.create(quote_mailbox(folder)), "CREATE")  # NO: exists
        response = await self._call(client.select(quote_mailbox(box.mailbox)), "SELECT")
        if response.result != "OK":
            raise ImapError(f"SELECT {box.mailbox} refused: {_text(response)}")
        uidvalidity = self._uidvalidity(response)
        if self.uidvalidity is not None and uidvalidity != self.uidvalidity:
            self.log.warning("imap_uidvalidity_changed", old=self.uidvalidity, new=uidvalidity,
                             note="messages are read again; intake answers duplicates")
        if uidvalidity != self.uidvalidity:
            self._moves.clear()
            self._retries.clear()
        self.uidvalidity = uidvalidity
        idle = client.has_capability("IDLE") and not self._idle_broken
        self.log.info("imap_connected", uidvalidity=uidvalidity, tls=box.tls, idle=idle,
                      move=client.has_capability("MOVE"),
                      exists=aioimaplib.extract_exists(response))
        while not self._stop.is_set():
            worked = await self._scan(client, uidvalidity)
            self._failures = 0  # a session that scans is healthy: back-off starts afresh
            if worked or self._exists_seen or self._stop.is_set():
                continue
            await self._wait(client)

    @staticmethod
    def _uidvalidity(response: Any) -> int:
        for line in response.lines:
            if isinstance(line, bytes) and (m := _UIDVALIDITY.search(line)):
                return int(m.group(1))
        raise ImapError("SELECT gave no UIDVALIDITY")

    async def _call(self, awaitable: Awaitable[T], what: str,
                    timeout: float | None = None) -> T:
        """Await an IMAP call, at most `timeout`, and not a moment after the connection died."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=timeout or self.box.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if lost in done:
            raise ImapError(f"connection lost during {what}")
        raise ImapError(f"{what}: no answer within {timeout or self.box.timeout:g} s")

    # -- reading -----------------------------------------------------------------------------

    async def _scan(self, client: aioimaplib.IMAP4, uidvalidity: int) -> bool:
        """Process what is in the mailbox; True when something was done (scan again)."""
        self._exists_seen = False
        response = await self._call(client.uid_search("UNDELETED", charset=None), "SEARCH")
        if response.result != "OK":
            raise ImapError(f"SEARCH refused: {_text(response)}")
        uids = _search_uids(response.lines)
        present = set(uids)
        for book in (self._moves, self._retries):  # forget what someone else took away
            for key in [k for k in book if k[1] not in present]:
                del book[key]
        now = time.monotonic()
        todo = [u for u in uids if (r := self._retries.get((uidvalidity, u))) is None
                or r.due <= now]
        if not todo:
            return False
        sizes = await self._sizes(client, todo)
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
            raw = await self._fetch(client, uid, size)
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

    async def _sizes(self, client: aioimaplib.IMAP4, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for chunk in _chunks(uids, 200):
            response = await self._call(
                client.uid("fetch", ",".join(map(str, chunk)), "(UID RFC822.SIZE)"), "FETCH")
            if response.result != "OK":
                raise ImapError(f"FETCH RFC822.SIZE refused: {_text(response)}")
            for line in response.lines:
                if not isinstance(line, bytes) or b"FETCH" not in line:
                    continue
                uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
                if uid and size:
                    sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int, size: int) -> bytes | None:
        # aioimaplib resets its own timer on each chunk; this bound allows a slow link.
        timeout = self.box.timeout + size / 100_000
        response = await self._call(client.uid("fetch", str(uid), "(UID BODY.PEEK[])"),
                                    "FETCH BODY", timeout=timeout)
        if response.result != "OK":
            raise ImapError(f"FETCH {uid} refused: {_text(response)}")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None  # expunged by someone else meanwhile

    # -- moving ------------------------------------------------------------------------------

    async def _move(self, client: aioimaplib.IMAP4, key: tuple[int, int], target: str) -> None:
        uid = str(key[1])
        folder = quote_mailbox(target)
        if client.has_capability("MOVE"):
            response = await self._call(client.uid("move", uid, folder), "MOVE")
            ok, why = response.result == "OK", _text(response)
        else:
            response = await self._call(client.uid("copy", uid, folder), "COPY")
            ok, why = response.result == "OK", _text(response)
            if ok:
                response = await self._call(
                    client.uid("store", uid, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                ok, why = response.result == "OK", _text(response)
            if ok and client.has_capability("UIDPLUS"):
                response = await self._call(client.uid("expunge", uid), "EXPUNGE")
                ok, why = response.result == "OK", _text(response)
            elif ok:  # without UIDPLUS: the box is mailgw's own, expunge all \Deleted
                response = await self._call(client.expunge(), "EXPUNGE")
                ok, why = response.result == "OK", _text(response)
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

    async def _wait(self, client: aioimaplib.IMAP4) -> None:
        if not client.has_capability("IDLE") or self._idle_broken:
            await self._wait_either(self._wait_limit(self.box.poll_interval))
            if self._lost.is_set():
                raise ImapError("connection lost while waiting to poll")
            return
        await self._idle(client, self._wait_limit(self.box.idle_renew))

    async def _wait_either(self, seconds: float) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({stop, lost}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            lost.cancel()

    async def _idle(self, client: aioimaplib.IMAP4, seconds: float) -> None:
        queue = client.protocol.idle_queue
        while not queue.empty():  # pushes left from an earlier IDLE
            queue.get_nowait()
        try:
            idle_task = await self._call(client.idle_start(timeout=seconds), "IDLE")
        except aioimaplib.Abort as exc:
            self._idle_broken = True  # advertised but refused: poll instead
            self.log.warning("imap_idle_refused", reason=str(exc), poll=self.box.poll_interval)
            return
        self.log.info("imap_idle", renew_in=round(seconds, 1))
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            push = asyncio.ensure_future(client.wait_server_push(timeout=remaining))
            stop = asyncio.ensure_future(self._stop.wait())
            lost = asyncio.ensure_future(self._lost.wait())
            done, pending = await asyncio.wait({push, stop, lost},
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if lost in done:
                raise ImapError("connection lost during IDLE")
            if stop in done:
                break
            try:
                lines = push.result()
            except TimeoutError:
                break  # renew
            if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                break  # renew
            for line in lines:
                if isinstance(line, bytes) and _TROUBLE.match(line):  # BYE, or NO/BAD
                    text = line.decode("utf-8", "replace")[:200]  # (e.g. box deleted)
                    raise ImapError(f"server said during IDLE: {text}")
            if any(isinstance(x, bytes) and _EXISTS.match(x) for x in lines):
                break  # new mail
        client.idle_done()
        response = await self._call(idle_task, "IDLE DONE")
        if response.result != "OK":
            raise ImapError(f"IDLE ended with {response.result}: {_text(response)}")

    # -- closing -----------------------------------------------------------------------------

    async def _close(self, client: aioimaplib.IMAP4) -> None:
        """Polite end on stop: LOGOUT (briefly), then drop the connection."""
        self._leaving = True
        try:
            if not self._lost.is_set():
                await self._call(client.logout(), "LOGOUT", timeout=min(self.box.timeout, 2.0))
        except Exception as exc:  # noqa: BLE001 - we are leaving anyway
            if not self._lost.is_set():  # the server hung up after its BYE: as expected
                self.log.debug("imap_logout_failed", reason=_reason(exc))
        self._abandon(client)

    def _abandon(self, client: aioimaplib.IMAP4 | None) -> None:
        """Forget a client: close its transport and cancel its pending tasks (no awaits)."""
        if client is None:
            return
        for task in list(client.tasks) + list(client.protocol.tasks):
            task.cancel()
        if not client._client_task.done():
            client._client_task.cancel()
        transport = client.protocol.transport
        if transport is not None:
            transport.close()


class _LoginRefused(ImapError):
    pass


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError | ssl.SSLError | TimeoutError) and not str(exc):
        return type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return text[:300]


def _search_uids(lines: Iterable[Any]) -> list[int]:
    out: list[int] = []
    items = list(lines)
    for line in items[:-1]:  # the last line is the tagged status text
        if isinstance(line, bytes) and re.fullmatch(rb"[\d ]*", line.strip()):
            out += [int(x) for x in line.split()]
    return sorted(set(out))


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


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
