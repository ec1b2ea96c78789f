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
import hmac
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import structlog

from mailgw.dispatch.drivers import cloud
from mailgw.dispatch.drivers.base import (
    CALLBACKS,
    MEDIA,
    PROVIDER_ERROR,
    TIMEOUT,
    CallbackRequest,
    CallRequest,
    CallResult,
    Driver,
    HttpReply,
)
from mailgw.dispatch.drivers.cloud_http import ApiError, Client, basic_auth
from mailgw.dispatch.drivers.ports import CheckContext, Ports
from mailgw.dispatch.drivers.rate import TokenBucket
from mailgw.dispatch.drivers.twilio_call import (
    CALL_RANKS,
    FINAL_STATUSES,
    HANGUP_FAX,
    HANGUP_HUMAN,
    HANGUP_MACHINE,
    KEEP,
    PLAY,
    PLAYED,
    STEP_RANKS,
    TRANSFER,
    TWIML,
    WELCOME,
    call_options,
    reply,
    result_for,
    signature,
    twiml,
    url_variants,
)
from mailgw.ops.config_types import Duration, read_secret

log = structlog.get_logger("mailgw.dispatch.twilio")

NAME = "twilio"
_buckets: dict[str, TokenBucket] = {}
_buckets_lock = threading.Lock()


@dataclass
class TwilioSettings:
    """Twilio Programmable Voice (REST API 2010-04-01), docs/drivers-cloud.md."""

    api_url: str = "https://api.twilio.com"
    account_sid: str = ""
    auth_token: str = ""
    auth_token_file: str = ""  # read the auth token from this file instead (first line)
    from_number: str = ""  # caller ID: a Twilio number or a verified caller ID
    public_url: str = ""  # https://… where Twilio reaches [http] listen (required)
    lines: int = 4
    calls_per_second: float = 1.0  # the account's CPS (Twilio's default is 1), per process
    machine_detection: str = "DetectMessageEnd"  # DetectMessageEnd | Enable | off
    ring_timeout: int = 30  # seconds Twilio lets the phone ring
    welcome_text: str = "Press star to hear your message."
    media_ttl: Duration = 7200.0  # how long a signed sound URL stays valid
    poll_interval: Duration = 60.0
    max_call_time: Duration = 3600.0
    timeout: Duration = 30.0
    api_retries: int = 4
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"

    def secret(self) -> str:
        return read_secret(self.auth_token, self.auth_token_file)

    def problems(self, ctx: CheckContext) -> list[str]:
        """Files, URLs and values always; the credentials only when this driver is chosen."""
        key = f"drivers.{NAME}"
        out = cloud.setting_problems({f"{key}.auth_token_file": self.auth_token_file},
                                     {f"{key}.public_url": self.public_url,
                                      f"{key}.api_url": self.api_url})
        if self.machine_detection not in ("DetectMessageEnd", "Enable", "off"):
            out.append(f"{key}.machine_detection: expected DetectMessageEnd, Enable or off")
        if self.calls_per_second < 0:
            out.append(f"{key}.calls_per_second: must be 0 (no limit) or more")
        if ctx.chosen:
            for name, value in (("account_sid", self.account_sid),
                                ("from_number", self.from_number),
                                ("public_url", self.public_url)):
                if not value:
                    out.append(f"{key}.{name}: required by dispatch.driver = {NAME}")
            if not (self.auth_token or self.auth_token_file):
                out.append(f"{key}.auth_token: required (or auth_token_file)")
            if self.public_url and not ctx.http_listen:
                out.append(f"http.listen: required by dispatch.driver = {NAME} (callbacks "
                           "and the sound are served there)")
        return out


class TwilioDriver(Driver):
    """Paces its own call creations (`calls_per_second`, per account and process), so the
    dispatcher's rate stays the protocol's default (no limit)."""

    name = NAME
    channels = frozenset({"voice"})
    callback_routes = frozenset({CALLBACKS, MEDIA})
    max_body = 64_000  # Twilio's form posts are small

    def __init__(self, settings: TwilioSettings, ports: Ports):
        self.settings = settings
        self.events = ports.events
        self.media = ports.media
        self.lines = settings.lines
        self.retry = settings.retry
        self.token = settings.secret()
        self.client = Client(settings.api_url, basic_auth(settings.account_sid, self.token),
                             timeout=settings.timeout, retries=settings.api_retries,
                             lines=settings.lines)
        self.call_key = cloud.derive_key(self.token or settings.account_sid, "twilio-call")
        self.media_key = cloud.derive_key(self.token or settings.account_sid, "twilio-media")
        self.base = (f"/2010-04-01/Accounts/{urllib.parse.quote(settings.account_sid, safe='')}"
                     "/Calls")
        self.public = settings.public_url.rstrip("/")
        self.sounds: dict[int, bytes] = {}  # delivery id -> sound, while its call is on

    # -- placing a call ----------------------------------------------------------------------

    async def place_call(self, request: CallRequest) -> CallResult:
        s = self.settings
        sound = request.document or await asyncio.to_thread(self.media.sound,
                                                            request.delivery_id)
        if not sound:
            return CallResult(PROVIDER_ERROR, error_text="no sound to play")
        options = dict(request.options)
        compact = call_options(options)
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
            except ApiError as exc:
                return CallResult(PROVIDER_ERROR, retryable=exc.retryable,
                                  error_code=f"HTTP {exc.status}" if exc.status else None,
                                  error_text=f"Twilio: {exc.text}"[:300])
            sid = str(call.get("sid") or "")
            if not sid:
                return CallResult(PROVIDER_ERROR, retryable=True,
                                  error_text="Twilio: no call sid in the answer")
            await self._record(sid, str(call.get("status") or "queued"), {"source": "create"})
            log.info("call_created", sid=sid, delivery_id=request.delivery_id)
            found = await cloud.wait_final(self.events, NAME, sid, deadline=deadline,
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
        found = await asyncio.to_thread(self.events.events, NAME, sid)
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
        except (ApiError, TimeoutError) as exc:
            log.warning("call_end_failed", sid=sid, error=str(exc)[:200])

    async def _record(self, sid: str, status: str, facts: dict[str, Any]) -> bool:
        facts = {**facts, "at": round(time.time(), 3)}
        level = (cloud.FINAL_RANK if status in FINAL_STATUSES
                 else STEP_RANKS.get(status, CALL_RANKS.get(status, 1)))
        new = await asyncio.to_thread(self.events.record, NAME, sid, status, level, facts)
        if new:
            cloud.notify(NAME, sid)
        return new

    async def close(self) -> None:
        await self.client.close()

    # -- requests from Twilio --------------------------------------------------------------

    def _authentic(self, request: CallbackRequest, params: list[tuple[str, str]]) -> bool:
        given = request.headers.get("x-twilio-signature", "")
        if not given or not self.public:
            return False
        for url in url_variants(self.public + request.target):
            if hmac.compare_digest(signature(self.token, url, params).encode(),
                                   given.encode()):
                return True
        return False

    async def handle_callback(self, request: CallbackRequest) -> HttpReply:
        try:
            params = urllib.parse.parse_qsl(request.body.decode("utf-8"),
                                            keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return reply(400, "not a form\n")
        if not self._authentic(request, params):
            log.warning("callback_refused", driver=NAME, reason="signature")
            return reply(403, "forbidden\n")
        token, _, kind = request.rest.partition("/")
        claims = cloud.verify(self.call_key, token)
        form = dict(params)
        sid = form.get("CallSid", "")
        if claims is None or not sid:
            return reply(403, "forbidden\n")
        raw = claims.get("o")
        options: dict[str, Any] = raw if isinstance(raw, dict) else {}
        hook = f"{self.public}/callbacks/{NAME}/{token}"
        facts = {k: form[k] for k in KEEP if k in form}
        if kind == "status":
            status = form.get("CallStatus", "")
            if status not in CALL_RANKS and status not in FINAL_STATUSES:
                return reply(400, "unknown CallStatus\n")
            new = await self._record(sid, status, {**facts, "source": "callback"})
            log.info("call_status", sid=sid, status=status, duplicate=not new)
            return reply(204)
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
                return twiml(f'<Dial callerId="{caller}">{escape(str(options["t"]))}</Dial>')
            return await self._play(sid, options, claims, hook)
        if kind == "done":
            await self._record(sid, PLAYED, facts)
            return twiml("<Hangup/>")
        return reply(404, "not found\n")

    async def _answered(self, sid: str, form: dict[str, str], options: dict[str, Any],
                        claims: dict[str, Any], hook: str, facts: dict[str, Any]
                        ) -> HttpReply:
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
            return twiml("<Hangup/>")
        if options.get("w"):
            await self._record(sid, WELCOME, facts)
            return self._welcome(hook)
        return await self._play(sid, options, claims, hook)

    def _welcome(self, hook: str) -> HttpReply:
        text = escape(self.settings.welcome_text)
        gather = (f'<Gather input="dtmf" numDigits="1" timeout="8" finishOnKey="" '
                  f'action={quoteattr(hook + "/gather?step=welcome")} method="POST">'
                  f"<Say>{text}</Say></Gather>")
        return twiml(gather, gather, "<Hangup/>")

    async def _play(self, sid: str, options: dict[str, Any], claims: dict[str, Any],
                    hook: str) -> HttpReply:
        await self._record(sid, PLAY, {})
        media = cloud.sign(self.media_key, {"d": claims.get("d")}, self.settings.media_ttl)
        play = f"<Play>{escape(f'{self.public}/media/{NAME}/{media}')}</Play>"
        done = f'<Redirect method="POST">{escape(hook + "/done")}</Redirect>'
        if options.get("t"):
            play = (f'<Gather input="dtmf" numDigits="1" timeout="2" finishOnKey="" '
                    f'action={quoteattr(hook + "/gather?step=play")} method="POST">'
                    f"{play}</Gather>")
        return twiml(play, done)

    async def handle_media(self, request: CallbackRequest) -> HttpReply:
        claims = cloud.verify(self.media_key, request.rest.split("/", 1)[0])
        if claims is None or not isinstance(claims.get("d"), int):
            return reply(403, "forbidden\n")
        delivery_id = claims["d"]
        sound = self.sounds.get(delivery_id) or await asyncio.to_thread(
            self.media.sound, delivery_id)
        if not sound:
            return reply(404, "not found\n")
        return 200, sound, cloud.sniff_audio(sound), {}


