"""One IMAP connection through aioimaplib, as the few plain calls a mailbox session needs.

aioimaplib never turns a closed connection into an error and can hang on BYE during IDLE
(its issue #110): every call here is bounded by the mailbox's ``timeout`` and also ends as
soon as the connection is lost. Any trouble raises :class:`ImapError`: the session drops the
client and connects again. What reaches inside aioimaplib lives in :mod:`.aioimaplib_compat`.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aioimaplib

from mailgw.imap import aioimaplib_compat as compat

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_EXISTS = re.compile(rb"^\d+ EXISTS")
_BYE = re.compile(rb"^BYE\b")
_TROUBLE = re.compile(rb"^(BYE|NO|BAD)\b")


class ImapError(Exception):
    """Something went wrong with the session: drop the client and connect again."""


class LoginRefused(ImapError):
    """The server said no to LOGIN: reconnect slowly, or the account gets locked."""


class IdleRefused(Exception):
    """The server advertises IDLE but refuses it: poll instead (the session stays)."""


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


class ImapClient:
    """A connected, logged-in client; :meth:`connect` builds it, :meth:`abandon` ends it."""

    def __init__(self, client: aioimaplib.IMAP4, lost: asyncio.Event, timeout: float,
                 log: Any) -> None:
        self.imap = client
        self.lost = lost  # set when the connection drops or the server says BYE
        self.timeout = timeout
        self.log = log
        self.exists_seen = False  # an EXISTS came (new mail): scan again before waiting
        self.leaving = False  # our own LOGOUT: its BYE is expected
        compat.hook_untagged(client, self._untagged)

    @classmethod
    async def connect(cls, *, host: str, port: int, tls: str, timeout: float, user: str,
                      password: Callable[[], str], ssl_context: ssl.SSLContext | None,
                      log: Any) -> ImapClient:
        """Greeting, STARTTLS when asked, LOGIN. ``password`` is called only when needed."""
        context: ssl.SSLContext | None = None
        if tls != "none":
            context = ssl_context or ssl.create_default_context()
        lost = asyncio.Event()
        imap = aioimaplib.IMAP4(host=host, port=port, timeout=timeout,
                                conn_lost_cb=lambda _exc: lost.set(),
                                ssl_context=context if tls == "implicit" else None)
        client = cls(imap, lost, timeout, log)
        try:
            await client.call(imap.wait_hello_from_server(), "greeting")
            if tls == "starttls":
                assert context is not None
                await client._starttls(context, host)
            response = await client.call(imap.login(user, password()), "LOGIN")
            if response.result != "OK":
                raise LoginRefused(f"LOGIN refused: {_text(response)}")
        except BaseException:
            client.abandon()  # the caller never sees this client: close it here
            raise
        return client

    def _untagged(self, line: bytes) -> None:
        """Notice EXISTS and BYE in any response (aioimaplib drops some untagged lines)."""
        text = line.replace(b"* ", b"", 1) if line.startswith(b"* ") else line
        if _EXISTS.match(text):
            self.exists_seen = True
        elif _BYE.match(text) and not self.leaving:  # our LOGOUT gets a BYE too
            self.log.info("imap_server_bye", text=text.decode("utf-8", "replace")[:200])
            self.lost.set()

    async def _starttls(self, context: ssl.SSLContext, host: str) -> None:
        """STARTTLS by hand (aioimaplib has none): never LOGIN in clear instead."""
        if not self.imap.has_capability("STARTTLS"):
            raise ImapError("the server does not offer STARTTLS (tls = \"starttls\"); "
                            "not sending the password in clear")
        response = await self.call(compat.starttls_command(self.imap), "STARTTLS")
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response)}")
        await self.call(compat.upgrade_to_tls(self.imap, context, host), "TLS handshake")
        await self.call(compat.refresh_capabilities(self.imap), "CAPABILITY")

    async def call(self, awaitable: Awaitable[T], what: str, timeout: float | None = None) -> T:
        """Await an IMAP call, at most `timeout`, and not a moment after the connection died."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=timeout or self.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if task in done:
            return task.result()
        task.cancel()
        if lost in done:
            raise ImapError(f"connection lost during {what}")
        raise ImapError(f"{what}: no answer within {timeout or self.timeout:g} s")

    def has_capability(self, name: str) -> bool:
        return self.imap.has_capability(name)

    # -- the mailbox -------------------------------------------------------------------------

    async def create(self, folder: str) -> None:
        await self.call(self.imap.create(quote_mailbox(folder)), "CREATE")  # NO: exists

    async def select(self, mailbox: str) -> tuple[int, int | None]:
        """SELECT: (UIDVALIDITY, EXISTS)."""
        response = await self.call(self.imap.select(quote_mailbox(mailbox)), "SELECT")
        if response.result != "OK":
            raise ImapError(f"SELECT {mailbox} refused: {_text(response)}")
        for line in response.lines:
            if isinstance(line, bytes) and (m := _UIDVALIDITY.search(line)):
                return int(m.group(1)), aioimaplib.extract_exists(response)
        raise ImapError("SELECT gave no UIDVALIDITY")

    async def search_uids(self) -> list[int]:
        response = await self.call(self.imap.uid_search("UNDELETED", charset=None), "SEARCH")
        if response.result != "OK":
            raise ImapError(f"SEARCH refused: {_text(response)}")
        return _search_uids(response.lines)

    async def sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for chunk in _chunks(uids, 200):
            response = await self.call(
                self.imap.uid("fetch", ",".join(map(str, chunk)), "(UID RFC822.SIZE)"), "FETCH")
            if response.result != "OK":
                raise ImapError(f"FETCH RFC822.SIZE refused: {_text(response)}")
            for line in response.lines:
                if not isinstance(line, bytes) or b"FETCH" not in line:
                    continue
                uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
                if uid and size:
                    sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    async def fetch(self, uid: int, size: int) -> bytes | None:
        """The message, unread flag untouched (BODY.PEEK); None when expunged meanwhile."""
        # aioimaplib resets its own timer on each chunk; this bound allows a slow link.
        timeout = self.timeout + size / 100_000
        response = await self.call(self.imap.uid("fetch", str(uid), "(UID BODY.PEEK[])"),
                                   "FETCH BODY", timeout=timeout)
        if response.result != "OK":
            raise ImapError(f"FETCH {uid} refused: {_text(response)}")
        for line in response.lines:
            if isinstance(line, bytearray):
                return bytes(line)
        return None  # expunged by someone else meanwhile

    async def move(self, uid: int, target: str) -> tuple[bool, str]:
        """MOVE, else COPY + \\Deleted + EXPUNGE: (done, the server's text)."""
        imap, key, folder = self.imap, str(uid), quote_mailbox(target)
        if imap.has_capability("MOVE"):
            response = await self.call(imap.uid("move", key, folder), "MOVE")
            return response.result == "OK", _text(response)
        response = await self.call(imap.uid("copy", key, folder), "COPY")
        ok, why = response.result == "OK", _text(response)
        if ok:
            response = await self.call(
                imap.uid("store", key, "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
            ok, why = response.result == "OK", _text(response)
        if ok and imap.has_capability("UIDPLUS"):
            response = await self.call(imap.uid("expunge", key), "EXPUNGE")
            ok, why = response.result == "OK", _text(response)
        elif ok:  # without UIDPLUS: the box is mailgw's own, expunge all \Deleted
            response = await self.call(imap.expunge(), "EXPUNGE")
            ok, why = response.result == "OK", _text(response)
        return ok, why

    # -- waiting -----------------------------------------------------------------------------

    async def wait_either(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep until `seconds` pass, `stop` is set or the connection is lost."""
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({stopping, lost}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            lost.cancel()

    async def idle(self, stop: asyncio.Event, seconds: float) -> None:
        """IDLE until new mail, `stop`, or `seconds` (then renew); :class:`IdleRefused`."""
        compat.drain_idle_queue(self.imap)  # pushes left from an earlier IDLE
        try:
            idle_task = await self.call(self.imap.idle_start(timeout=seconds), "IDLE")
        except aioimaplib.Abort as exc:
            raise IdleRefused(str(exc)) from None
        self.log.info("imap_idle", renew_in=round(seconds, 1))
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            push = asyncio.ensure_future(self.imap.wait_server_push(timeout=remaining))
            stopping = asyncio.ensure_future(stop.wait())
            lost = asyncio.ensure_future(self.lost.wait())
            done, pending = await asyncio.wait({push, stopping, lost},
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if lost in done:
                raise ImapError("connection lost during IDLE")
            if stopping in done:
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
        self.imap.idle_done()
        response = await self.call(idle_task, "IDLE DONE")
        if response.result != "OK":
            raise ImapError(f"IDLE ended with {response.result}: {_text(response)}")

    # -- closing -----------------------------------------------------------------------------

    async def logout(self, timeout: float) -> None:
        """LOGOUT (its BYE is expected); the caller abandons the client afterwards."""
        self.leaving = True
        if not self.lost.is_set():
            await self.call(self.imap.logout(), "LOGOUT", timeout=timeout)

    def abandon(self) -> None:
        """Forget the connection: close it and cancel its pending tasks (no awaits)."""
        compat.abandon(self.imap)
