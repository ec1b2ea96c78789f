"""The Twilio voice driver: one voice message through Twilio Programmable Voice.

One call = one Twilio Call resource (REST API 2010-04-01; docs/drivers-cloud.md has the
operator's side and the sources):
  create  POST {api_url}/2010-04-01/Accounts/{AccountSid}/Calls.json with To, From, Url
          (our TwiML, fetched by Twilio when the call is answered), StatusCallback with
          StatusCallbackEvent initiated/ringing/answered/completed, MachineDetection
          (DetectMessageEnd: on a voicemail the TwiML runs after the greeting's beep) and
          Timeout; at most `calls_per_second` creations a second in this process;
  TwiML   POST /callbacks/twilio/<token>/twiml: <Play> of the sound, served at
          GET /media/twilio/<signed, expiring token>; with a welcome prompt a <Gather>
          waits for * first; with a transfer number a <Gather> around <Play> dials it on 9;
          a <Redirect> after <Play> tells us the message was played to its end;
  learn   status callbacks (POST /callbacks/twilio/<token>/status), else GET …/Calls/{Sid}
          now and then; each is a `provider_event` row (any host may take it).

Every request from Twilio is checked with X-Twilio-Signature (HMAC-SHA1 of the URL and
the sorted POST parameters, keyed with the auth token); a missing or wrong signature gets
403 and changes nothing. On cancel (operator or shutdown) the call is ended through the
API (Status=canceled or completed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
import urllib.parse
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import structlog
from sqlalchemy import select

from mailgw.accounts import voice as voicelib
from mailgw.dispatch.drivers import cloud
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
    TIMEOUT,
    CallRequest,
    CallResult,
)
from mailgw.dispatch.pacing import TokenBucket
from mailgw.ops.config import TwilioSettings
from mailgw.store import Delivery, Job, Store

log = structlog.get_logger("mailgw.dispatch.twilio")

NAME = "twilio"
TEXT = "text/plain; charset=utf-8"
XML = "text/xml; charset=utf-8"
CALL_RANKS = {"queued": 5, "initiated": 10, "ringing": 20, "in-progress": 30}
FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
# What the TwiML side of a call did, as events of the call (ranks under the final ones).
TWIML, WELCOME, PLAY, TRANSFER, PLAYED = "twiml", "welcome", "play", "transfer", "played"
HANGUP_FAX, HANGUP_HUMAN, HANGUP_MACHINE = "hangup:fax", "hangup:human", "hangup:machine"
STEP_RANKS = {TWIML: 31, WELCOME: 35, HANGUP_FAX: 36, HANGUP_HUMAN: 36, HANGUP_MACHINE: 36,
              PLAY: 40, TRANSFER: 45, PLAYED: 50}
KEEP = ("CallStatus", "CallDuration", "AnsweredBy", "SequenceNumber", "Timestamp",
        "CallbackSource", "Digits")

_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


def signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + each name+value, sorted))."""
    data = url
    for name in sorted({k for k, _ in params}):
        for value in sorted(v for k, v in params if k == name):
            data += name + value
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, without its port and with the default port (as Twilio's helper
    libraries check: the port Twilio signs is not always the one in the URL)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    out = [url]
    for netloc in (prefix + host, f"{prefix}{host}:{port}"):
        out.append(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    return list(dict.fromkeys(out))


def result_for(found: list[cloud.Event], sid: str, length: float,
               options: dict[str, str]) -> CallResult:
    """A finished call (its events, final first) as a call result, told with mailgw.accounts.voice's
    outcome sentences; `length` is the sound's, in seconds."""
    final = found[0]
    steps = {e.status: e.payload for e in found}
    answered_by = next((str(e.payload["AnsweredBy"]) for e in found
                        if e.payload.get("AnsweredBy")), "")
    duration = next((float(e.payload["CallDuration"]) for e in found
                     if str(e.payload.get("CallDuration", "")).isdigit()), 0.0)
    base: dict[str, Any] = {"duration": duration, "provider_ref": sid}
    full = round(length)

    def since_play(step: dict[str, Any]) -> int:
        start, end = steps.get(PLAY, {}).get("at"), step.get("at")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            return full
        return max(0, min(full, round(end - start)))

    status = final.status
    if status == "busy":
        return CallResult(BUSY, retryable=True, error_code="busy", error_text="busy", **base)
    if status == "no-answer":
        return CallResult(NO_ANSWER, retryable=True, error_code="no-answer",
                          error_text="no answer", **base)
    if status == "failed":
        return CallResult(NOT_IN_SERVICE, error_code="failed",
                          error_text="the call could not be completed as dialled", **base)
    if status == "canceled":
        return CallResult(CANCELLED, error_text="the call was cancelled", **base)
    machine = answered_by.startswith("machine")
    if HANGUP_FAX in steps:
        return CallResult(NOT_FAX, error_code="fax", error_text="a fax machine answered",
                          **base)
    if HANGUP_MACHINE in steps:
        return CallResult(NO_ANSWER, retryable=True, error_code="machine",
                          error_text=voicelib.outcome_text("machine_not_left"), **base)
    if HANGUP_HUMAN in steps:
        return CallResult(NO_ANSWER, error_code="human",
                          error_text="a person answered: the message is for voicemail only",
                          **base)
    if TRANSFER in steps:
        return CallResult(DELIVERED, detail=voicelib.outcome_text(
            "transferred", heard=since_play(steps[TRANSFER]), number=options.get("t", "")),
            **base)
    if PLAYED in steps:
        key = "machine_left" if machine else "played_star" if WELCOME in steps else "played"
        return CallResult(DELIVERED, detail=voicelib.outcome_text(key, heard=full), **base)
    if PLAY in steps:
        heard = since_play(final.payload)
        return CallResult(PARTIAL, error_code="hangup", error_text=voicelib.outcome_text(
            "heard_part", heard=heard, length=full), **base)
    if WELCOME in steps:
        if machine:
            return CallResult(NO_ANSWER, retryable=True, error_code="welcome",
                              error_text=voicelib.outcome_text("machine_no_star"), **base)
        return CallResult(NO_ANSWER, error_code="welcome",
                          error_text=voicelib.outcome_text("no_star"), **base)
    return CallResult(LINE_DROPPED, retryable=True, error_code="hangup",
                      error_text="call dropped before the message", **base)


def _reply(status: int, body: str = "", ctype: str = TEXT
           ) -> tuple[int, bytes, str, dict[str, str]]:
    return status, body.encode(), ctype, {}


def _twiml(*verbs: str) -> tuple[int, bytes, str, dict[str, str]]:
    body = '<?xml version="1.0" encoding="UTF-8"?><Response>' + "".join(verbs) + "</Response>"
    return _reply(200, body, XML)


class TwilioDriver:
    name = NAME
    channels = frozenset({"voice"})
    max_body = 64_000  # Twilio's form posts are small

    def __init__(self, settings: TwilioSettings, store: Store):
        self.settings = settings
        self.store = store
        self.lines = settings.lines
        self.token = settings.secret()
        self.client = cloud.Client(settings.api_url,
                                   cloud.basic_auth(settings.account_sid, self.token),
                                   timeout=settings.timeout, retries=settings.api_retries)
        self.call_key = cloud.derive_key(self.token or settings.account_sid, "twilio-call")
        self.media_key = cloud.derive_key(self.token or settings.account_sid, "twilio-media")
        self.base = (f"/2010-04-01/Accounts/{urllib.parse.quote(settings.account_sid, safe='')}"
                     "/Calls")
        self.public = settings.public_url.rstrip("/")
        self.sounds: dict[int, bytes] = {}  # delivery id -> sound, while its call is on

    # -- placing a call ----------------------------------------------------------------------

    async def place_call(self, request: CallRequest) -> CallResult:
        s = self.settings
        sound = request.document or await asyncio.to_thread(self._stored_sound,
                                                            request.delivery_id)
        if not sound:
            return CallResult(PROVIDER_ERROR, error_text="no sound to play")
        options = dict(getattr(request, "options", None) or {})
        compact = _options(options)
        token = cloud.sign(self.call_key, {"d": request.delivery_id, "o": compact},
                           s.max_call_time + 86400)
        hook = f"{self.public}/callbacks/{NAME}/{token}"
        params = [("To", request.number), ("From", options.get("callerid") or s.from_number),
                  ("Url", f"{hook}/twiml"), ("Method", "POST"),
                  ("StatusCallback", f"{hook}/status"), ("StatusCallbackMethod", "POST"),
                  *[("StatusCallbackEvent", e)
                    for e in ("initiated", "ringing", "answered", "completed")],
                  ("Timeout", str(s.ring_timeout))]
        if s.machine_detection != "off":
            params.append(("MachineDetection", s.machine_detection))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.max_call_time
        self.sounds[request.delivery_id] = sound
        sid = ""
        try:
            await self._pace()
            try:
                reply = await self.client.call(
                    "POST", f"{self.base}.json", body=urllib.parse.urlencode(params).encode(),
                    content_type="application/x-www-form-urlencoded", retry_timeouts=False)
                call = reply.json()
            except cloud.ApiError as exc:
                return CallResult(PROVIDER_ERROR, retryable=exc.retryable,
                                  error_code=f"HTTP {exc.status}" if exc.status else None,
                                  error_text=f"Twilio: {exc.text}"[:300])
            sid = str(call.get("sid") or "")
            if not sid:
                return CallResult(PROVIDER_ERROR, retryable=True,
                                  error_text="Twilio: no call sid in the answer")
            await self._record(sid, str(call.get("status") or "queued"), {"source": "create"})
            log.info("call_created", sid=sid, delivery_id=request.delivery_id)
            found = await cloud.wait_final(self.store, NAME, sid, deadline=deadline,
                                           poll=lambda: self._poll(sid),
                                           poll_every=s.poll_interval)
            if found is None:
                await self._hang_up(sid)
                return CallResult(TIMEOUT, provider_ref=sid, retryable=True,
                                  error_text="Twilio gave no final status in time")
            return result_for(found, sid, request.sound_seconds or 0.0, compact)
        except asyncio.CancelledError:
            if sid:
                await self._hang_up(sid)
            raise
        finally:
            self.sounds.pop(request.delivery_id, None)

    async def _pace(self) -> None:
        """At most calls_per_second call creations a second (per process and account)."""
        rate = self.settings.calls_per_second
        if rate <= 0:
            return
        while True:
            with _buckets_lock:
                now = time.monotonic()
                bucket = _buckets.setdefault(self.settings.account_sid,
                                             TokenBucket(rate, now=now))
                bucket.rate = rate
                if bucket.allowed(1, now):
                    bucket.take(1, now)
                    return
                wait = bucket.delay(now)
            await asyncio.sleep(max(wait, 0.001))

    async def _poll(self, sid: str) -> None:
        reply = await self.client.call("GET", f"{self.base}/{urllib.parse.quote(sid)}.json")
        call = reply.json()
        status = str(call.get("status") or "")
        if status:
            facts = {"CallStatus": status, "source": "poll"}
            if call.get("duration") not in (None, ""):
                facts["CallDuration"] = str(call["duration"])
            if call.get("answered_by"):
                facts["AnsweredBy"] = str(call["answered_by"])
            await self._record(sid, status, facts)

    async def _hang_up(self, sid: str) -> None:
        """End the call (best effort): canceled before it is answered, completed after."""
        found = await asyncio.to_thread(cloud.events, self.store, NAME, sid)
        if found and found[0].rank >= cloud.FINAL_RANK:
            return
        answered = any(e.status == "in-progress" or e.status in STEP_RANKS for e in found)
        status = "completed" if answered else "canceled"
        body = urllib.parse.urlencode({"Status": status}).encode()
        try:
            await asyncio.wait_for(self.client.call(
                "POST", f"{self.base}/{urllib.parse.quote(sid)}.json", body=body,
                content_type="application/x-www-form-urlencoded", retries=1), 15)
            log.info("call_ended_by_us", sid=sid, status=status)
        except (cloud.ApiError, TimeoutError) as exc:
            log.warning("call_end_failed", sid=sid, error=str(exc)[:200])

    async def _record(self, sid: str, status: str, facts: dict[str, Any]) -> bool:
        facts = {**facts, "at": round(time.time(), 3)}
        level = (cloud.FINAL_RANK if status in FINAL_STATUSES
                 else STEP_RANKS.get(status, CALL_RANKS.get(status, 1)))
        new = await asyncio.to_thread(cloud.record_event, self.store, NAME, sid, status, level,
                                      facts)
        if new:
            cloud.notify(NAME, sid)
        return new

    def _stored_sound(self, delivery_id: int) -> bytes | None:
        with self.store.read() as s:
            return s.scalar(select(Job.document).join(Delivery, Delivery.job_id == Job.id)
                            .where(Delivery.id == delivery_id))

    # -- requests from Twilio --------------------------------------------------------------

    def _authentic(self, request: Any, params: list[tuple[str, str]]) -> bool:
        given = request.headers.get("x-twilio-signature", "")
        if not given or not self.public:
            return False
        for url in _url_variants(self.public + request.target):
            if hmac.compare_digest(signature(self.token, url, params).encode(),
                                   given.encode()):
                return True
        return False

    async def handle_callback(self, request: Any) -> tuple[int, bytes, str, dict[str, str]]:
        try:
            params = urllib.parse.parse_qsl(request.body.decode("utf-8"),
                                            keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return _reply(400, "not a form\n")
        if not self._authentic(request, params):
            log.warning("callback_refused", driver=NAME, reason="signature")
            return _reply(403, "forbidden\n")
        token, _, kind = request.rest.partition("/")
        claims = cloud.verify(self.call_key, token)
        form = dict(params)
        sid = form.get("CallSid", "")
        if claims is None or not sid:
            return _reply(403, "forbidden\n")
        raw = claims.get("o")
        options: dict[str, Any] = raw if isinstance(raw, dict) else {}
        hook = f"{self.public}/callbacks/{NAME}/{token}"
        facts = {k: form[k] for k in KEEP if k in form}
        if kind == "status":
            status = form.get("CallStatus", "")
            if status not in CALL_RANKS and status not in FINAL_STATUSES:
                return _reply(400, "unknown CallStatus\n")
            new = await self._record(sid, status, {**facts, "source": "callback"})
            log.info("call_status", sid=sid, status=status, duplicate=not new)
            return _reply(204)
        if kind == "twiml":
            return await self._answered(sid, form, options, claims, hook, facts)
        if kind == "gather":
            step = urllib.parse.parse_qs(urllib.parse.urlsplit(request.target).query).get(
                "step", [""])[0]
            digits = form.get("Digits", "")
            if step == "welcome":
                if digits == "*":
                    return await self._play(sid, options, claims, hook)
                return self._welcome(hook)
            if step == "play" and digits == "9" and options.get("t"):
                await self._record(sid, TRANSFER, facts)
                caller = escape(self.settings.from_number)
                return _twiml(f'<Dial callerId="{caller}">{escape(str(options["t"]))}</Dial>')
            return await self._play(sid, options, claims, hook)
        if kind == "done":
            await self._record(sid, PLAYED, facts)
            return _twiml("<Hangup/>")
        return _reply(404, "not found\n")

    async def _answered(self, sid: str, form: dict[str, str], options: dict[str, Any],
                        claims: dict[str, Any], hook: str, facts: dict[str, Any]
                        ) -> tuple[int, bytes, str, dict[str, str]]:
        await self._record(sid, TWIML, facts)
        answered_by = form.get("AnsweredBy", "")
        hang_up = None
        if answered_by == "fax":
            hang_up = HANGUP_FAX
        elif options.get("v") == "no" and answered_by.startswith("machine"):
            hang_up = HANGUP_MACHINE
        elif options.get("v") == "only" and answered_by == "human":
            hang_up = HANGUP_HUMAN
        if hang_up is not None:
            await self._record(sid, hang_up, facts)
            return _twiml("<Hangup/>")
        if options.get("w"):
            await self._record(sid, WELCOME, facts)
            return self._welcome(hook)
        return await self._play(sid, options, claims, hook)

    def _welcome(self, hook: str) -> tuple[int, bytes, str, dict[str, str]]:
        text = escape(self.settings.welcome_text)
        gather = (f'<Gather input="dtmf" numDigits="1" timeout="8" finishOnKey="" '
                  f'action={quoteattr(hook + "/gather?step=welcome")} method="POST">'
                  f"<Say>{text}</Say></Gather>")
        return _twiml(gather, gather, "<Hangup/>")

    async def _play(self, sid: str, options: dict[str, Any], claims: dict[str, Any],
                    hook: str) -> tuple[int, bytes, str, dict[str, str]]:
        await self._record(sid, PLAY, {})
        media = cloud.sign(self.media_key, {"d": claims.get("d")}, self.settings.media_ttl)
        play = f"<Play>{escape(f'{self.public}/media/{NAME}/{media}')}</Play>"
        done = f'<Redirect method="POST">{escape(hook + "/done")}</Redirect>'
        if options.get("t"):
            play = (f'<Gather input="dtmf" numDigits="1" timeout="2" finishOnKey="" '
                    f'action={quoteattr(hook + "/gather?step=play")} method="POST">'
                    f"{play}</Gather>")
        return _twiml(play, done)

    async def handle_media(self, request: Any) -> tuple[int, bytes, str, dict[str, str]]:
        claims = cloud.verify(self.media_key, request.rest.split("/", 1)[0])
        if claims is None or not isinstance(claims.get("d"), int):
            return _reply(403, "forbidden\n")
        delivery_id = claims["d"]
        sound = self.sounds.get(delivery_id) or await asyncio.to_thread(
            self._stored_sound, delivery_id)
        if not sound:
            return _reply(404, "not found\n")
        return 200, sound, cloud.sniff_audio(sound), {}


def _options(options: dict[str, str]) -> dict[str, str]:
    """The call options the TwiML needs (mailgw.accounts.voice's canonical ones), short, for the
    signed callback token: t = transfer number, w = welcome prompt, v = voicemail mode."""
    out: dict[str, str] = {}
    if options.get("transfer"):
        out["t"] = options["transfer"]
    if options.get("welcome") == "yes":
        out["w"] = "1"
    if options.get("voicemail") in ("no", "only"):
        out["v"] = options["voicemail"]
    return out
