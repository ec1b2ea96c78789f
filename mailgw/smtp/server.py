"""The SMTP listener: aiosmtpd's protocol on our loop, with a thin handler that calls intake.

Policy lives here, the decision in intake:
- RCPT accepts only the gateway addresses and `<number>@<gateway domain>` (no open relay);
- SIZE is advertised and enforced; connections, idle time and DATA time are bounded;
- floods meet per-client caps and, near the connection limit, short timeouts (flood.py);
- STARTTLS with the configured certificate; AUTH only after TLS, checked in memory;
- wrong passwords are slowed, never a lockout (mailgw.intake.guessing): the reply to a wrong
  guess is held (a tarpit), an address with wrong guesses gets few DATA at once, and SMTP
  AUTH failures delay that client only;
- DATA is answered once intake has committed; our own failures answer 451, never a traceback.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailgw.accounts.accounts import AuthCache, normalize_address
from mailgw.errors import EX_CONFIG, OperatorError, listen_error
from mailgw.intake.guessing import AUTH_DEFERRED, CLIENT_BUSY, ClientSlots, Guard
from mailgw.intake.known_clients import Known, KnownClients
from mailgw.intake.service import Envelope as IntakeEnvelope
from mailgw.intake.service import Intake
from mailgw.ops import metrics
from mailgw.ops.config import SmtpSettings, split_hostport
from mailgw.smtp.flood import FULL, Connections
from mailgw.smtp.relay import TrustedRelays, greeting_name, told_to_relay
from mailgw.smtp.timers import StressTimers
from mailgw.translit import to_ascii

log = structlog.get_logger("mailgw.smtp")

MAX_RCPT = 100
TEMPFAIL = "451 4.3.0 Internal error, please try again later"
RELAY_DENIED = "550 5.7.1 Relaying denied: not a gateway address"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
TOO_MANY_CONNECTIONS = FULL
DATA_TIMEOUT = "421 4.4.2 DATA took too long, closing the connection"
NUL_REFUSED = "554 5.6.0 NUL characters are not allowed in mail"
BUSY = "451 4.3.2 Too many mails arriving at once, please try again shortly"
DATA_WAIT = 30.0
OTHER_CHANNEL = "452 4.5.3 Too many recipients: fax and voice go in separate mails"


class GatewayHandler:
    def __init__(self, intake: Intake, *, on_accepted: Callable[[], None] | None = None):
        self.intake = intake
        self.on_accepted = on_accepted
        self.relays = TrustedRelays.of(intake.settings.smtp.trusted_relays)
        self.guard: Guard = intake.guard

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # RFC 6531: a non-ASCII address needs the SMTPUTF8 extension.
        if not address.isascii() and "SMTPUTF8" not in [o.upper() for o in mail_options]:
            return "553 5.6.7 Non-ASCII address without SMTPUTF8"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= MAX_RCPT:
            return "452 4.5.3 Too many recipients"
        channel = self.intake.channel_of(address)
        if channel is None:
            log.info("rcpt_refused", rcpt=address[:200], peer=_ip(session))
            return RELAY_DENIED
        if envelope.rcpt_tos and self.intake.channel_of(envelope.rcpt_tos[0]) != channel:
            # One mail is one job on one channel: the other channel's recipients are sent
            # again by the client (an MTA does so at once) in a mail of their own.
            return OTHER_CHANNEL
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # pragma: no cover - decode_data is off
            raw = raw.encode("utf-8", "surrogateescape")
        # Intake gets the only reference (see _hand_over) and drops it once the mail is
        # decided: a large mail waiting for its commit then costs its document, not the
        # document and the whole mail (base64 and all) too.
        envelope.content = envelope.original_content = None
        peer = _ip(session)
        relayed = peer in self.relays  # a trusted MTA: the client is in its Received header
        client_ip = self.relays.client_ip(peer, raw) if relayed else peer
        if b"\x00" in raw:
            return told_to_relay(NUL_REFUSED, None, False, client_ip) if relayed else NUL_REFUSED
        env = IntakeEnvelope(mail_from=envelope.mail_from or "",
                             rcpt_tos=tuple(envelope.rcpt_tos),
                             auth_login=_login(session), smtputf8=bool(envelope.smtp_utf8),
                             client_ip=client_ip)
        box = [raw]
        del raw
        result = await asyncio.to_thread(_hand_over, self.intake, box, env)
        if result.delay and isinstance(server, GatewaySMTP):
            server.tarpit = result.delay  # held once the DATA slot is free (smtp_DATA)
        if (result.job_ids or result.proven) and self.on_accepted is not None:
            self.on_accepted()  # a job to dispatch, or an ack waiting in the outbox
        reply = result.reply
        if relayed:
            reply = told_to_relay(reply, result.code, result.proven, client_ip)
        if not env.smtputf8 and not reply.isascii():
            reply = to_ascii(reply)  # also a first answer replayed to a client without it
        return reply

    async def handle_exception(self, error: Exception) -> str:
        log.error("smtp_internal_error", error_type=type(error).__name__, exc_info=error)
        return TEMPFAIL


def _hand_over(intake: Intake, box: list[bytes], env: IntakeEnvelope) -> Any:
    """``intake.handle(raw, env)`` with the box's mail, which leaves the box (and so the
    arguments of ``to_thread``, which live until the call returns)."""
    return intake.handle(box.pop(), env)


def _ip(session: Session) -> str | None:
    peer = getattr(session, "peer", None)
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer) if peer else None


def _login(session: Session) -> str | None:
    if not getattr(session, "authenticated", False):
        return None
    data = getattr(session, "auth_data", None)
    return data if isinstance(data, str) else None


class Authenticator:
    """aiosmtpd's synchronous authenticator, answering from the in-memory AuthCache.

    A login from an address that proved the account before (GatewaySMTP.smtp_AUTH reads
    which, before this runs) is always checked; any other takes one of the account's
    password checks for the minute, or gets 454 unchecked. A failure's 535 is held by the
    client's own delay (its address and network), never by the account's."""

    def __init__(self, cache: AuthCache, guard: Guard):
        self.cache = cache
        self.guard = guard

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        account = normalize_address(login) if self.cache.has(login) else None
        ip = _ip(session)
        known = server.known if isinstance(server, GatewaySMTP) else Known()
        if account and not self.guard.may_check(account, account in known.logins,
                                                self.cache.verified(login, password)):
            metrics.guess_deferred("auth")
            log.warning("auth_deferred", peer=ip, reason="password checks spent")
            return AuthResult(success=False, handled=False, message=AUTH_DEFERRED)
        email = self.cache.check(login, password)
        if email is None:
            self.guard.failed(account, ip)
            log.info("auth_failed", peer=ip, login=login[:200])
            if not isinstance(server, GatewaySMTP):
                return AuthResult(success=False, handled=False)
            server.tarpit, server.auth_refusal = self.guard.client_delay(ip), AUTH_INVALID
            return AuthResult(success=False, handled=True)
        # Keep only the login: the password must not live on in the session.
        return AuthResult(success=True, auth_data=email)


class GatewaySMTP(StressTimers):
    """aiosmtpd's protocol (patched: aiosmtpd_compat) with connection caps (flood.py),
    stress-adaptive timeouts (timers.py), DATA slots and a bound on the DATA phase, and
    AUTH failures held by the client's delay."""

    def __init__(self, handler: GatewayHandler, *, connections: Connections,
                 data_timeout: float, known: KnownClients | None = None, **kwargs: Any):
        super().__init__(handler, connections=connections, **kwargs)
        self.data_timeout = data_timeout
        self.known_clients = known
        self.known = Known()  # what this client proved, read before an AUTH is checked
        self.tarpit = 0.0  # hold the next reply this long (a wrong guess)
        self.auth_refusal: str | None = None  # set by the authenticator, answered here
        self._data_timer: asyncio.TimerHandle | None = None

    def admit(self, transport: asyncio.BaseTransport) -> bytes | None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else None
        return self.connections.admit(self, ip)  # a 421: full, or too many from this client

    def released(self) -> None:
        self.connections.release(self)

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        # aiosmtpd's AUTH, with what the client address proved read first (the
        # authenticator is synchronous: no store there), and a failure's 535 held by the
        # client's delay (the authenticator sets `tarpit`).
        if self.known_clients is not None and self.session is not None:
            self.known = await asyncio.to_thread(self.known_clients.of, _ip(self.session))
        self.tarpit, self.auth_refusal = 0.0, None
        await super().smtp_AUTH(arg)
        delay, refusal = self.tarpit, self.auth_refusal
        self.tarpit, self.auth_refusal = 0.0, None
        if refusal is not None:
            if delay:
                await asyncio.sleep(delay)
            await self.push(refusal)

    async def data_phase(self) -> None:
        # DATA's checks have passed (aiosmtpd's, reply for reply). A client that guessed
        # wrong gets few DATA at once; a trusted relay's clients count apart.
        clients = self.connections.clients
        if clients is None or self.session is None or (
                isinstance(self.event_handler, GatewayHandler)
                and _ip(self.session) in self.event_handler.relays):
            await self._data()
            return
        async with clients.hold(_ip(self.session)) as free:
            if not free:
                await self.push(CLIENT_BUSY)
                return
            await self._data()

    async def _data(self) -> None:
        # A slot before the 354: a flood of large mails waits here instead of in memory.
        slots = self.connections.data_slots
        if slots.locked():  # wait_for costs a task: only when there is something to wait for
            self._suspend()  # we make the client wait: it is not idle
            self.connections.data_pressure()  # trickling DATAs must not keep the slots
            try:
                await asyncio.wait_for(slots.acquire(), timeout=DATA_WAIT)
            except TimeoutError:
                self._resume()
                await self.push(BUSY)
                return
        else:
            await slots.acquire()
        # Bound the transfer only: once the mail is in, intake runs to its commit.
        self._data_timer = self.loop.call_later(self.data_timeout, self._data_expired)
        self._begin_data()
        try:
            reply = await self.receive_and_handle()
        finally:
            self.cancel_data_timer()
            slots.release()
            if self.in_data():
                self._end_data()  # the reply is the client's to read: its timer runs again
        if reply is None:  # a 500 or 552 answered, or the client gone
            return
        # A wrong guess's reply is held here, its DATA slot free for others' mail (the
        # client's own slot, if it has guessed wrong before, stays taken).
        delay, self.tarpit = self.tarpit, 0.0
        if delay:
            await asyncio.sleep(delay)
        await self.push(reply)

    def mail_received(self) -> None:
        super().mail_received()
        self.cancel_data_timer()  # the transfer is over: intake runs to its commit

    def cancel_data_timer(self) -> None:
        timer = self._data_timer
        if timer is not None:
            timer.cancel()
            self._data_timer = None

    def _data_expired(self) -> None:
        log.warning("data_timeout", peer=_ip(self.session) if self.session else None)
        self._hang_up((DATA_TIMEOUT + "\r\n").encode())


_TLS_REASONS = {"PEM_LIB": "not a PEM certificate and key",
                "KEY_VALUES_MISMATCH": "the key is not the certificate's"}


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, OSError) as exc:  # unreadable, not PEM, key of another certificate
        if isinstance(exc, ssl.SSLError):
            # OpenSSL's "PEM lib" comes without a reason: a file that is not PEM
            reason = _TLS_REASONS.get(str(exc.reason or "PEM_LIB"), str(exc.reason).lower())
        else:
            reason = (exc.strerror or str(exc)).lower()
        raise OperatorError(f"smtp.tls_cert/smtp.tls_key: cannot load {settings.tls_cert} "
                            f"with {settings.tls_key} ({reason})", EX_CONFIG) from None
    return ctx


async def start_smtp(settings: SmtpSettings, handler: GatewayHandler,
                     auth_cache: AuthCache | None = None
                     ) -> tuple[asyncio.Server, Connections]:
    loop = asyncio.get_running_loop()
    host, port = split_hostport(settings.listen)
    context = tls_context(settings)
    authenticator = Authenticator(auth_cache, handler.guard) if auth_cache else None
    auth_without_tls = settings.allow_auth_without_tls
    connections = Connections(
        settings.max_connections, settings.max_concurrent_data,
        per_client=settings.max_connections_per_client, rate=settings.max_connection_rate,
        threshold=settings.stress_threshold,
        exceptions=[*settings.client_limit_exceptions, *settings.trusted_relays],
        evict_after=settings.stress_timeout / 2,
        clients=ClientSlots(handler.guard, DATA_WAIT))
    known = handler.intake.known
    hostname = greeting_name(settings.hostname, handler.intake.settings.gateway.domain)

    def factory() -> Any:
        return GatewaySMTP(
            handler, connections=connections, known=known,
            data_timeout=settings.data_timeout, stress_timeout=settings.stress_timeout,
            data_size_limit=settings.max_message_size,
            hostname=hostname, timeout=settings.idle_timeout,
            enable_SMTPUTF8=True, decode_data=False, tls_context=context,
            authenticator=authenticator, auth_required=settings.auth_required,
            auth_require_tls=not auth_without_tls,
            auth_exclude_mechanism=["CRAM-MD5"], loop=loop)

    try:
        server = await loop.create_server(factory, host=host, port=port)
    except OSError as exc:
        raise listen_error("smtp.listen", settings.listen, exc) from None
    return server, connections
