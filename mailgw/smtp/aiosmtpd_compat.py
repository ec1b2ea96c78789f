"""Every patch mailgw makes to aiosmtpd, in one place. Written against aiosmtpd 1.4.6.

aiosmtpd's `SMTP` is the protocol; mailgw needs five things it does not offer as public
hooks, so `PatchedSMTP` overrides its internals (private methods and attributes):

1. `__dir__`: its method tables, computed once per class instead of once per connection;
2. `_getaddr`: a plain `<local@domain>` path parsed without the email header parser;
3. `connection_made` / `connection_lost`: a new connection can be refused (`admit`) before
   aiosmtpd starts a session, and its end is told (`released`);
4. `_reset_timeout` / `_timeout_cb`: the idle timer's deadline is the subclass's
   (`timer_deadline`), so it can be shortened under stress or paused while we work;
5. `smtp_DATA`: the mail received into one buffer (aiosmtpd keeps a bytearray per line),
   with a hook around the transfer (`data_phase`) for slots and timers.

Each patch says why, and what of aiosmtpd's it relies on. pyproject.toml pins aiosmtpd to
1.4.x, and tests/integration/test_aiosmtpd_compat.py runs aiosmtpd's public behaviour (DATA
replies, SIZE, dot-stuffing, bare LF, `_getaddr`) against the stock class and this one, so
an upgrade that moves an internal fails there first. Deliberate differences from stock,
asserted by that test: `decode_data` and PROXY are refused at construction (mailgw uses
neither), and a handler's deprecated `process_message` is never called (only `handle_DATA`).

Subclasses (mailgw.smtp.timers, mailgw.smtp.server) use the hooks below, never aiosmtpd's
internals. Nothing here knows mailgw's policy; the defaults behave as stock aiosmtpd.
"""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

log = structlog.get_logger("mailgw.smtp")

WRITTEN_AGAINST = "1.4.6"
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd 1.4.6's replies
TOO_MUCH_DATA = "552 Error: Too much mail data"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"

_ATOMS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_PATH = re.compile(rf"<({_ATOMS}@{_ATOMS})>")  # <dot-atom@dot-atom>, RFC 5321 4.1.2


class PatchedSMTP(SMTP):
    """aiosmtpd's SMTP with the patches above; with no hook overridden it answers as stock."""

    _method_names: list[str] | None = None

    def __init__(self, handler: Any, **kwargs: Any):
        # The buffered DATA hands the handler bytes, and the timer patch ignores the
        # PROXY handshake's own timeout (aiosmtpd 1.4.6 passes it to _reset_timeout).
        if kwargs.get("decode_data"):
            raise ValueError("PatchedSMTP hands the handler bytes: decode_data must be off")
        if kwargs.get("proxy_protocol_timeout") is not None:
            raise ValueError("PatchedSMTP does not support the PROXY protocol")
        self._admitted = False
        self.active_at = 0.0  # loop time of the last activity (the default deadline's)
        super().__init__(handler, **kwargs)

    # -- patch 1: the method tables ----------------------------------------------------------

    def __dir__(self) -> list[str]:
        # aiosmtpd 1.4.6's __init__ finds its auth_* and smtp_* methods with
        # inspect.getmembers(self) and dir(self) on every connection, about half the cost
        # of a connection: only those names, computed once per class (a subclass adds its
        # own smtp_* methods, so the cache is the class's, not inherited).
        cls = type(self)
        names = cls.__dict__.get("_method_names")
        if names is None:
            names = sorted(n for n in object.__dir__(self) if n.startswith(("auth_", "smtp_")))
            cls._method_names = names
        return names

    # -- patch 2: MAIL and RCPT paths --------------------------------------------------------

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd 1.4.6 parses every path with email._header_value_parser (and defines a
        # typing.Protocol class per call): most of the CPU of MAIL and RCPT. A plain
        # <dot-atom@dot-atom> gets the same answer from a regex; anything else (quotes,
        # literals, comments, no brackets, SMTPUTF8) goes to aiosmtpd's parser.
        match = _PLAIN_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address, rest = match.group(1), arg[match.end():].lstrip(" \t")  # as its CFWS
        if rest.startswith("("):  # a comment after the path: the parser's business
            return super()._getaddr(arg)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # -- patch 3: admission ------------------------------------------------------------------

    def admit(self, transport: asyncio.BaseTransport) -> bytes | None:
        """A new connection: None lets it in, else the reply it gets before it is closed."""
        return None

    def released(self) -> None:
        """An admitted connection ended."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiosmtpd 1.4.6 calls connection_made again after STARTTLS, with the TLS transport
        # and `_original_transport` set: only the first call is a new connection. A refused
        # one never reaches aiosmtpd's, so no session or handler task is made for it.
        if self._original_transport is None and not self._admitted:
            refusal = self.admit(transport)
            if refusal is not None:
                transport.write(refusal)  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self.released()
        if self.session is None:  # refused in connection_made: aiosmtpd's asserts a session
            return
        super().connection_lost(error)

    # -- patch 4: the idle timer -------------------------------------------------------------

    @property
    def idle_timeout(self) -> float:
        """The `timeout` given to aiosmtpd (its `_timeout_duration`)."""
        return float(self._timeout_duration)

    def on_activity(self) -> None:
        """The connection opened or a valid command came (aiosmtpd's timer reset)."""
        self.active_at = self.loop.time()

    def timer_deadline(self) -> float | None:
        """When the session times out (loop time); None: not now (paused)."""
        return self.active_at + self.idle_timeout

    def timed_out(self) -> None:
        """The deadline passed: aiosmtpd closes the connection without a word."""
        super()._timeout_cb()

    def timer_started(self) -> bool:
        return self._timeout_handle is not None

    def arm_timer(self) -> None:
        """Set the timer to `timer_deadline()` (or stop it, for None)."""
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()
        when = self.timer_deadline()
        if when is not None:
            self._timeout_handle = self.loop.call_at(when, self._timeout_cb)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd 1.4.6 calls this at connect and after each valid command, and sets
        # `_timeout_handle` to call_later(timeout, _timeout_cb); connection_lost cancels
        # that handle. `duration` is the PROXY handshake's (refused in __init__).
        self.on_activity()
        self.arm_timer()

    def _timeout_cb(self) -> None:
        # The deadline is computed when the timer fires: activity that did not re-arm it
        # (a DATA line) has pushed the deadline back, and the timer moves on to it.
        if self.transport is None:
            return
        when = self.timer_deadline()
        if when is None:
            return
        if when - self.loop.time() > 0.005:
            self._timeout_handle = self.loop.call_at(when, self._timeout_cb)
            return
        self.timed_out()

    # -- patch 5: DATA into one buffer -------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # aiosmtpd 1.4.6's smtp_DATA checks, reply for reply; then the transfer, which a
        # subclass may wrap (data_phase).
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.data_phase()

    async def data_phase(self) -> None:
        """DATA once its checks have passed: the transfer, the handler, the reply."""
        reply = await self.receive_and_handle()
        if reply is not None:
            await self.push(reply)

    def data_line(self, size: int) -> None:
        """A DATA line came in; `size` bytes so far."""

    def mail_received(self) -> None:
        """The mail is in; the handler is called next."""

    async def receive_and_handle(self) -> str | None:
        """354, the mail, then handle_DATA: the reply to give (aiosmtpd's "250 OK" for a
        handler without handle_DATA), or None once a 500 or 552 has been answered or the
        client has gone. The envelope is reset as aiosmtpd resets it."""
        assert self.envelope is not None
        await self.push(START_DATA)
        content = await self._receive_data()
        if content is None:
            self._set_post_data_state()
            return None
        # aiosmtpd 1.4.6 sets both; a handler may drop them to free the mail early.
        self.envelope.content = self.envelope.original_content = content
        del content
        self.mail_received()
        # aiosmtpd 1.4.6 also calls a handler's deprecated process_message: not here.
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        return "250 OK" if status is MISSING else str(status)

    async def _receive_data(self) -> bytes | None:
        """The mail, dot-unstuffed; None once a 500 or 552 has been answered.

        aiosmtpd 1.4.6 keeps a bytearray per line (about 60 B of overhead for each 78 B line
        of base64) and then joins them: 20-30 MB per 10 MB mail in flight. Here a mail costs
        its own size (BytesIO.getvalue() hands over its buffer without a copy). The rest is
        aiosmtpd's, read from its `_reader` and `_writer`: only a lone ".\\r\\n" ends DATA
        (never a bare LF: smuggling), and an over-long line answers 500 and too much data
        552, both after the rest of the DATA has been read (RFC 5321 4.2.5)."""
        buf: io.BytesIO | None = io.BytesIO()  # None once refused: the rest is read, not kept
        size = 0
        limit = self.data_size_limit
        refusal = LINE_TOO_LONG
        partial = False  # inside a line longer than the reader's limit (aiosmtpd's fragments)
        while self.transport is not None:
            try:
                line: bytes = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                log.info("connection_lost_during_data")
                self._writer.close()
                raise
            except asyncio.LimitOverrunError as e:
                buf = None
                line = await self._reader.read(e.consumed)
            if not partial and line == b".\r\n":
                break
            size += len(line)
            self.data_line(size)
            if buf is not None and limit and size > limit:
                refusal, buf = TOO_MUCH_DATA, None
            partial = not line.endswith(b"\r\n")
            if buf is None:
                continue
            if len(line) > self.line_length_limit:  # readuntil lets 1002-1003 bytes through
                buf = None
            else:
                buf.write(memoryview(line)[1:] if line.startswith(b".") else line)
        else:
            return None  # the connection is gone: no mail without its final dot
        if buf is None:
            await self.push(refusal)
            return None
        return buf.getvalue()
