"""The driver contract: the only code that talks to the telephone world.

A driver gets one call to place and returns what came of it. It knows nothing of SMTP,
the store or templates: what it needs from the rest of mailgw comes through the ports of
ports.py. A newcomer adds a driver by reading this file and `simulator.py`, then adds one
`register(...)` line (drivers/__init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

# Attempt results; error_class is the same word for the failures.
DELIVERED = "delivered"
PARTIAL = "partial"
BUSY = "busy"
NO_ANSWER = "no_answer"
LINE_DROPPED = "line_dropped"
NOT_FAX = "not_fax"
NOT_IN_SERVICE = "not_in_service"
PROVIDER_ERROR = "provider_error"
CANCELLED = "cancelled"
TIMEOUT = "timeout"
RESULTS = (DELIVERED, PARTIAL, BUSY, NO_ANSWER, LINE_DROPPED, NOT_FAX, NOT_IN_SERVICE,
           PROVIDER_ERROR, CANCELLED, TIMEOUT)


@dataclass(frozen=True)
class CallRequest:
    delivery_id: int
    attempt: int  # 1 for the first call of this delivery
    channel: str  # fax | voice
    number: str  # E.164
    idempotency_key: str  # the same key for a re-placed call after a crash
    document: bytes | None = field(default=None, repr=False)
    pages_total: int | None = None
    first_page: int = 1  # resume a partial fax from the first page not delivered
    sound_seconds: float | None = None
    # Voice call options (mailgw.accounts.voice; a key is absent when off): transfer (E.164, dialled
    # when the callee presses 9), welcome ("yes": ask for * before playing), callerid (E.164,
    # a verified number to show), retries (digits; the dispatcher applies it), voicemail
    # ("no": hang up on answering machines; "only": drop in the voicemail without ringing).
    options: dict[str, str] = field(default_factory=dict)
    # Fax quality (mailgw.documents.quality): normal 204×98, high 204×196, best 204×392 dpi. The
    # document is the same PDF whatever it is; the driver asks its line for this resolution.
    quality: str = "high"


@dataclass(frozen=True)
class CallResult:
    result: str  # one of RESULTS
    pages_sent: int = 0  # pages delivered by this call
    csid: str | None = None
    duration: float = 0.0  # seconds on the line
    provider_ref: str | None = None
    retryable: bool = False
    error_code: str | None = None
    error_text: str | None = None
    detail: str | None = None  # e.g. voice: "answering machine, message left"


# The HTTP routes a driver may serve under [http] listen (mailgw.http.provider_routes hands it the
# request untouched; the driver authenticates it): POST /callbacks/<name>/<rest> and
# GET /media/<name>/<rest>.
CALLBACKS, MEDIA = "callbacks", "media"


@dataclass(frozen=True)
class CallbackRequest:
    """One request for a driver, as received (the driver authenticates it)."""

    method: str
    target: str  # the raw path and query, e.g. /callbacks/twilio/TOKEN/status?x=1
    rest: str  # the path after /callbacks/<name>/ or /media/<name>/
    headers: dict[str, str]  # lower-case names
    body: bytes


# A driver's answer to a callback: status, body, content type, extra header fields.
HttpReply = tuple[int, bytes, str, dict[str, str]]
NOT_FOUND: HttpReply = (404, b"not found\n", "text/plain; charset=utf-8", {})


class Driver(Protocol):
    """What the dispatcher and the HTTP endpoint may rely on. Every capability is declared
    here with its default, so a driver subclasses this class and overrides only what it
    has; nothing outside probes a driver for a member."""

    name: ClassVar[str]
    channels: ClassVar[frozenset[str]]
    lines: int = 1  # calls this driver may place at once
    calls_per_second: float = 0.0  # the dispatcher starts calls at most this fast; 0 = no limit
    own_header_line: bool = False  # the provider prints its own header line on every page
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"
    callback_routes: ClassVar[frozenset[str]] = frozenset()  # CALLBACKS and/or MEDIA
    max_body: ClassVar[int] = 0  # the largest callback body taken, in bytes
    receive_interval: float = 0.0  # > 0: poll_received is called this often (seconds)

    async def place_call(self, request: CallRequest) -> CallResult: ...

    def detach(self) -> None:
        """Called before the dispatcher hands its calls back on shutdown: a driver whose
        calls can go on without it (and be adopted on the next start) leaves them running.
        By default a cancelled call is simply cancelled."""
        return None

    async def handle_callback(self, request: CallbackRequest) -> HttpReply:
        """POST /callbacks/<name>/<rest> (only when CALLBACKS is in callback_routes)."""
        return NOT_FOUND

    async def handle_media(self, request: CallbackRequest) -> HttpReply:
        """GET /media/<name>/<rest> (only when MEDIA is in callback_routes)."""
        return NOT_FOUND

    async def poll_received(self) -> int:
        """Look once for faxes sent to our numbers and hand each new one to the factory's
        `Ports.received`; how many were handed over."""
        return 0

    async def close(self) -> None:
        """Let go of connections and the like (the daemon is stopping)."""
        return None
