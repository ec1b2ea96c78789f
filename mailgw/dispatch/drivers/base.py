"""The driver contract: the only code that talks to the telephone world.

A driver gets one call to place and returns what came of it. It knows nothing of SMTP,
the store or templates. A newcomer adds a driver by reading this file and `simulator.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

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


class Driver(Protocol):
    name: str
    channels: frozenset[str]
    lines: int  # calls this driver may place at once

    async def place_call(self, request: CallRequest) -> CallResult: ...
