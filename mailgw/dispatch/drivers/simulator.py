"""The embedded driver: realistic timings, CSIDs and failures, chosen by the number.

The last two digits pick the case (DESIGN, "Drivers"), so any test, demo or acceptance
check can ask for one by dialling it. Calls last real fax speed times `time_scale`; a fax
page takes 30 s at the `high` quality, 15 s at `normal`, 60 s at `best` (its scan lines).

Voice (DESIGN's voice column, with the call options of mailgw.accounts.voice):
  00–87  a person answers; the message is played in full (with `welcome: yes`, after *)
  88     the person presses 9 halfway: transferred to the `transfer` number (else played)
  89     a person answers (with `welcome: yes`: never presses *, so nothing is played)
  90/91  busy once / no answer twice, then played      92  call dropped, then played
  93     answering machine: message left after the beep; `voicemail: no` hangs up instead
         (called again like a no answer); with `welcome: yes` no * comes: not left
  94/95  busy / no answer on every attempt               96  hung up halfway: partial
  97     not in service      98  slow (ten times)        99  provider error, then played
With `voicemail: only` the message is dropped in the voicemail without ringing: every
ending is a drop, except 95 (no voicemail box), 97, 98 and 99 as above.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import phonenumbers

from mailgw.dispatch.drivers.base import (
    BUSY,
    CANCELLED,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PARTIAL,
    PROVIDER_ERROR,
    CallRequest,
    CallResult,
    Driver,
)
from mailgw.dispatch.drivers.ports import CheckContext
from mailgw.dispatch.drivers.voice_outcomes import outcome_text

NAME = "simulator"


@dataclass
class SimulatorSettings:
    time_scale: float = 1.0
    lines: int = 4
    calls_per_second: float = 0.0  # the rate calls are started at; 0 = no limit
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"

    def problems(self, ctx: CheckContext) -> list[str]:
        if self.calls_per_second < 0:
            return [f"drivers.{NAME}.calls_per_second: must be 0 (no limit) or more"]
        return []

SECONDS_PER_PAGE = 30.0  # about 30 s a page at 14.4 kbit/s, at the `high` quality
# A page takes time in proportion to its scan lines (mailgw.documents.quality): normal has half of
# high's, best twice as many.
LINES = {"normal": 0.5, "high": 1.0, "best": 2.0}


def page_seconds(quality: str) -> float:
    """Seconds one page takes on the line at `quality` (pure)."""
    return SECONDS_PER_PAGE * LINES.get(quality, 1.0)
CONNECT = 15.0  # dialling, ringing, T.30 handshake
RING_NO_ANSWER = 45.0
BUSY_TONE = 5.0
RING = 8.0  # voice: dialling and ringing until someone (or something) answers
WELCOME = 6.0  # voice: the welcome prompt asking for *


def csid_for(number: str) -> str:
    """A CSID as a fax machine would report it: its number, at most 20 characters."""
    try:
        text = phonenumbers.format_number(phonenumbers.parse(number),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        text = number
    return text[:20]


def outcome(req: CallRequest) -> CallResult:
    """The pure decision: what this call does, before any waiting."""
    case = int(req.number[-2:]) if req.number[-2:].isdigit() else 0
    if req.channel == "voice":
        return voice_outcome(req, case)
    remaining = max((req.pages_total or 1) - req.first_page + 1, 0)
    voice = req.channel == "voice"
    per_page = page_seconds(req.quality)
    body = (req.sound_seconds or 10.0) if voice else per_page * remaining
    ref = f"sim-{req.idempotency_key}"
    csid = None if voice else csid_for(req.number)

    def delivered(scale: float = 1.0) -> CallResult:
        return CallResult(DELIVERED, pages_sent=0 if voice else remaining, csid=csid,
                          duration=(CONNECT + body) * scale, provider_ref=ref)

    def failed(result: str, retryable: bool, text: str, duration: float) -> CallResult:
        return CallResult(result, duration=duration, provider_ref=ref, retryable=retryable,
                          error_code=f"SIM-{case:02d}", error_text=text)

    def dropped(pages: int) -> CallResult:
        where = "during the message" if voice else f"after page {req.first_page + pages - 1}"
        if pages == 0 and not voice:
            where = f"during page {req.first_page}"
        return CallResult(LINE_DROPPED, pages_sent=pages, csid=csid, provider_ref=ref,
                          duration=CONNECT + per_page * (pages + 0.5), retryable=True,
                          error_code=f"SIM-{case:02d}", error_text=f"line dropped {where}")

    n = req.attempt
    if case == 90 and n == 1 or case == 94:
        return failed(BUSY, True, "busy", BUSY_TONE)
    if case == 91 and n <= 2 or case == 95:
        return failed(NO_ANSWER, True, "no answer", RING_NO_ANSWER)
    if case == 92 and n == 1:
        return dropped(min(1, remaining - 1) if not voice else 0)
    if case == 93:
        if voice:
            return CallResult(DELIVERED, duration=CONNECT + body, provider_ref=ref,
                              detail="answering machine: message left after the beep")
        return failed(NOT_FAX, False, "a voice answered, not a fax machine", CONNECT)
    if case == 96:
        if voice:
            return CallResult(PARTIAL, duration=CONNECT + body / 2, provider_ref=ref,
                              retryable=True, error_code="SIM-96",
                              error_text="hang-up during the message")
        return dropped(1 if n == 1 and remaining > 1 else 0)
    if case == 97:
        return failed(NOT_IN_SERVICE, False, "number not in service", 3.0)
    if case == 98:
        return delivered(10.0)
    if case == 99 and n == 1:
        return failed(PROVIDER_ERROR, True, "provider error (temporary)", 1.0)
    return delivered()


def voice_outcome(req: CallRequest, case: int) -> CallResult:
    """A voice call (see the module's table): who answers, what is heard, what is left."""
    opts = req.options
    length = req.sound_seconds or 10.0
    heard = round(length)
    half = max(1, round(length / 2))
    ref = f"sim-{req.idempotency_key}"
    code = f"SIM-{case:02d}"
    n = req.attempt
    welcome = opts.get("welcome") == "yes"
    prompt = WELCOME if welcome else 0.0

    def ok(key: str, seconds: float, **params: object) -> CallResult:
        return CallResult(DELIVERED, duration=RING + prompt + seconds, provider_ref=ref,
                          detail=outcome_text(key, **params))

    def failed(result: str, retryable: bool, text: str, duration: float) -> CallResult:
        return CallResult(result, duration=duration, provider_ref=ref, retryable=retryable,
                          error_code=code, error_text=text)

    if case == 97:
        return failed(NOT_IN_SERVICE, False, "number not in service", 3.0)
    if case == 99 and n == 1:
        return failed(PROVIDER_ERROR, True, "provider error (temporary)", 1.0)
    if opts.get("voicemail") == "only":  # a voicemail drop: the phone never rings
        if case == 95:
            return failed(NO_ANSWER, False, outcome_text("no_voicemail"), 2.0)
        return CallResult(DELIVERED, duration=(2.0 + length) * (10.0 if case == 98 else 1.0),
                          provider_ref=ref, detail=outcome_text("dropped", heard=heard))
    if case == 90 and n == 1 or case == 94:
        return failed(BUSY, True, "busy", BUSY_TONE)
    if case == 91 and n <= 2 or case == 95:
        return failed(NO_ANSWER, True, "no answer", RING_NO_ANSWER)
    if case == 92 and n == 1:
        return failed(LINE_DROPPED, True, "call dropped during the message", RING + half)
    if case == 93:  # an answering machine
        if welcome:
            return failed(NO_ANSWER, True, outcome_text("machine_no_star"),
                          RING + WELCOME)
        if opts.get("voicemail") == "no":
            return failed(NO_ANSWER, True, outcome_text("machine_not_left"), RING + 2)
        return ok("machine_left", length + 3.0, heard=heard)
    if case == 89 and welcome:
        return failed(NO_ANSWER, False, outcome_text("no_star"), RING + WELCOME)
    if case == 96:
        return CallResult(PARTIAL, duration=RING + prompt + half, provider_ref=ref,
                          error_code=code,
                          error_text=outcome_text("heard_part", heard=half,
                                                           length=heard))
    if case == 88 and opts.get("transfer"):
        return ok("transferred", half, heard=half, number=opts["transfer"])
    result = ok("played_star" if welcome else "played", length, heard=heard)
    return replace(result, duration=result.duration * (10.0 if case == 98 else 1.0))


class SimulatorDriver(Driver):
    name = NAME
    channels = frozenset({"fax", "voice"})

    def __init__(self, settings: SimulatorSettings):
        self.time_scale = settings.time_scale
        self.lines = settings.lines
        self.calls_per_second = settings.calls_per_second
        self.retry = settings.retry

    async def place_call(self, request: CallRequest) -> CallResult:
        """The outcome, after waiting its duration times `time_scale`. The attempt records
        the time it really took (the scaled one), so a notice's duration is what happened."""
        result = outcome(request)
        started = time.monotonic()
        try:
            await asyncio.sleep(result.duration * self.time_scale)
        except asyncio.CancelledError:  # an operator's cancel: say what had gone through
            elapsed = time.monotonic() - started
            return replace(cancelled(result, elapsed / (self.time_scale or 1.0),
                                     page_seconds(request.quality)), duration=elapsed)
        return replace(result, duration=result.duration * self.time_scale)


def cancelled(result: CallResult, elapsed: float, per_page: float = SECONDS_PER_PAGE
              ) -> CallResult:
    """The call hung up `elapsed` simulated seconds in: the pages whose time had passed were
    delivered (a fax machine keeps every page it confirmed); a page takes `per_page`."""
    pages = 0
    if result.pages_sent and result.duration > 0:
        scale = result.duration / (CONNECT + per_page * result.pages_sent)
        on_pages = elapsed / scale - CONNECT
        pages = min(result.pages_sent, max(0, int(on_pages // per_page)))
    text = "cancelled during the call"
    if pages:
        text += f" ({pages} page{'s' if pages > 1 else ''} sent before)"
    return CallResult(CANCELLED, pages_sent=pages, duration=elapsed,
                      provider_ref=result.provider_ref, csid=result.csid if pages else None,
                      error_text=text)
