"""The SMTP session's silence timer: aiosmtpd's idle timeout, made stress-adaptive.

aiosmtpd arms one timer at connect and after each valid command (`idle_timeout`). Here:
- under stress (see flood.Connections.stressed) the wait is `stress_timeout` (10 s, as
  Postfix's `smtpd_timeout` under stress), and NOOP, RSET, VRFY and HELP do not count as
  activity (Postfix's junk commands), so neither silence nor keep-alives hold a session;
- in DATA the timer waits for each line (`idle_timeout`), and under stress the whole DATA
  must also keep up MIN_DATA_RATE after its first `stress_timeout` (Postfix's
  `smtpd_min_data_rate`), so a byte-at-a-time DATA is cut as surely as a silent one;
- while the server itself works (waiting for a DATA slot, intake deciding) the timer is
  off: the client is not idle, we are;
- when stress begins, running sessions re-arm at once (`stress_began`), so those already
  silent for `stress_timeout` go now; a session once under stress stays so until it ends;
- a session that is cut gets `421 4.4.2`, and is aborted if it does not read it; so does
  one evicted to make room in a full listener (flood.Connections).

The deadline is computed lazily: DATA only notes the time and size of each line, and the
timer, when it fires, moves itself to the deadline that activity has pushed back. The
timer itself is aiosmtpd's, reached through the hooks of aiosmtpd_compat.PatchedSMTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import syntax

from mailgw.ops import metrics
from mailgw.smtp.aiosmtpd_compat import PatchedSMTP
from mailgw.smtp.flood import Connections

log = structlog.get_logger("mailgw.smtp")

TIMED_OUT = b"421 4.4.2 Timeout, closing the connection\r\n"
TOO_SLOW = b"421 4.4.2 DATA too slow, closing the connection\r\n"
MIN_DATA_RATE = 500  # bytes/s a DATA must keep up under stress (Postfix's smtpd_min_data_rate)
ABORT_AFTER = 2.0  # seconds a closed session may take to flush its 421 before it is aborted


class StressTimers(PatchedSMTP):
    """aiosmtpd's protocol with the timer above; GatewaySMTP builds on it."""

    def __init__(self, handler: Any, *, connections: Connections, stress_timeout: float = 10.0,
                 **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.connections = connections
        self.stress_timeout = stress_timeout
        self._active_at = 0.0  # loop time of the client's last counted activity
        self._prev_active = 0.0  # … before the current command (undone for junk commands)
        self._data_started: float | None = None  # loop time of the 354, while in DATA
        self._data_bytes = 0
        self._suspended = False
        self._stress_seen = False  # once under stress, for the rest of the session

    # -- what flood.Connections calls --------------------------------------------------------

    def in_data(self) -> bool:
        return self._data_started is not None

    def idle_for(self) -> float:
        if self._suspended or self.transport is None:
            return 0.0
        return self.loop.time() - self._active_at

    def evict(self) -> None:
        self._cut("evicted")

    def stress_began(self) -> None:
        """Stress began for this session: shorten its wait now."""
        self._stress_seen = True
        if self.transport is not None and self.timer_started() and not self._suspended:
            self.arm_timer()

    # -- the timer ---------------------------------------------------------------------------

    def on_activity(self) -> None:
        # At connect and after each valid command; the timer is armed next.
        self._prev_active, self._active_at = self._active_at, self.loop.time()
        self._suspended = False

    def _stressed(self) -> bool:
        # Sticky, as a Postfix smtpd started under stress keeps its short timeouts: else the
        # first sessions cut would end the stress and spare the rest of the flood.
        if not self._stress_seen:
            self._stress_seen = self.connections.stressed(self, self._data_started is not None)
        return self._stress_seen

    def timer_deadline(self) -> float | None:
        if self._suspended:
            return None
        idle = self.idle_timeout
        if not self._stressed():
            return self._active_at + idle
        wait = min(idle, self.stress_timeout)
        when = self._active_at + wait
        if self._data_started is not None:
            when = min(when, self._data_started + wait + self._data_bytes / MIN_DATA_RATE)
        return when

    def _suspend(self) -> None:
        """The server works (a DATA slot, intake): the client is not idle meanwhile."""
        self._suspended = True
        self.arm_timer()  # no deadline: stopped

    def _resume(self) -> None:
        self._suspended = False
        if self.transport is not None:
            self._active_at = self.loop.time()
            self.arm_timer()

    def _begin_data(self) -> None:
        self._data_started = self._active_at = self.loop.time()
        self._data_bytes = 0
        self._suspended = False
        self.arm_timer()

    def data_line(self, size: int) -> None:
        """A DATA line came in; `size` bytes so far (the timer reads these when it fires)."""
        self._active_at = self.loop.time()
        self._data_bytes = size

    def _end_data(self) -> None:
        self._data_started = None
        self._resume()

    def mail_received(self) -> None:
        self._suspend()  # intake decides: no client timer meanwhile

    def timed_out(self) -> None:
        self._cut("smtp_timeout")

    def _cut(self, event: str) -> None:
        stressed = self._stressed()
        in_data = self._data_started is not None
        session = self.session
        phase = "data" if in_data else "command" if session and session.host_name \
            else "greeting"
        metrics.smtp_timeout(phase, stressed)
        log.info(event, peer=_peer(self), phase=phase, stress=stressed,
                 data_bytes=self._data_bytes if in_data else None)
        self._hang_up(TOO_SLOW if in_data and stressed else TIMED_OUT)

    def _hang_up(self, reply: bytes) -> None:
        """Say why and close; abort a client that does not read (a close would wait for it
        to take our buffer, and keep its slot meanwhile)."""
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():  # type: ignore[attr-defined]
            transport.abort()  # type: ignore[attr-defined]
            return
        transport.write(reply)  # type: ignore[attr-defined]
        transport.close()
        self.loop.call_later(ABORT_AFTER, _abort, transport)

    # -- junk commands: no activity under stress ---------------------------------------------

    def _junk(self) -> None:
        if self._stressed():
            self._active_at = self._prev_active
            self.arm_timer()

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        self._junk()
        await super().smtp_NOOP(arg)

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        self._junk()
        await super().smtp_RSET(arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:
        self._junk()
        await super().smtp_VRFY(arg)

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        self._junk()
        await super().smtp_HELP(arg)


def _abort(transport: asyncio.BaseTransport) -> None:
    transport.abort()  # type: ignore[attr-defined]  # a no-op once the close is done


def _peer(proto: PatchedSMTP) -> str | None:
    peer = getattr(proto.session, "peer", None) if proto.session else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
