"""The Sinch fax driver: one fax through the Sinch Fax API v3 (formerly Phaxio).

One call = one Sinch fax (docs/drivers-cloud.md has the operator's side and the sources):
  send    POST {api_url}/v3/projects/{project_id}/faxes, multipart/form-data: `to`, the PDF
          as `file`, `from`, `serviceId`, `maxRetries=0` (mailgw's [dispatch.retry] decides
          what comes next), a `labels[mailgw-key]` label carrying the call's idempotency
          key, and, with `public_url`, a `callbackUrl` with Basic credentials in it
          (`callbackUrlContentType=application/json`, `inProgressNotifications=true`);
  learn   the callback (`POST /callbacks/sinch/<signed token>`, checked against the Basic
          credentials, as the API documents for webhooks), else GET …/faxes/{id} now and
          then; every answer is a `provider_event` row, so the host that took the callback
          need not be the one waiting, and a late IN_PROGRESS never hides COMPLETED;
  receive a fax sent to one of our numbers comes as INCOMING_FAX to the fixed URL
          /callbacks/sinch/incoming (set on the fax service), sinch_receive.py mails it;
  resume  the API sends whole documents: a retry after a partial fax sends every page
          again, and counts as delivered only the pages after those already delivered.

Ambiguous failures (a timeout or a 5xx after the request left) look for a fax carrying our
label (GET …/faxes?to=…) before sending again, so a retried request does not fax twice.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from mailgw.dispatch.drivers import cloud, sinch_receive
from mailgw.dispatch.drivers.base import (
    BUSY,
    CALLBACKS,
    CANCELLED,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PROVIDER_ERROR,
    TIMEOUT,
    CallbackRequest,
    CallRequest,
    CallResult,
    Driver,
    HttpReply,
)
from mailgw.dispatch.drivers.cloud_http import ApiError, Client, basic_auth, multipart
from mailgw.dispatch.drivers.ports import CheckContext, Ports
from mailgw.ops.config_types import Duration, read_secret

log = structlog.get_logger("mailgw.dispatch.sinch")

NAME = "sinch"


@dataclass
class SinchSettings:
    """Sinch Fax API v3 (formerly Phaxio), docs/drivers-cloud.md."""

    api_url: str = "https://fax.api.sinch.com"
    project_id: str = ""
    key_id: str = ""  # an access key of the project (HTTP Basic user)
    key_secret: str = ""
    key_secret_file: str = ""  # read the key secret from this file instead (first line)
    service_id: str = ""  # empty: the project's default fax service
    from_number: str = ""  # empty: the service's default number
    public_url: str = ""  # https://… where Sinch reaches [http] listen; empty = polling only
    callback_user: str = "mailgw"  # Basic credentials put in the callback URL
    callback_password: str = ""
    callback_password_file: str = ""
    lines: int = 4
    poll_interval: Duration = 60.0  # status API look-up while no callback came
    max_call_time: Duration = 3600.0
    timeout: Duration = 30.0  # every API request
    api_retries: int = 4  # 429, 5xx and timeouts are tried again this many times
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"

    def secret(self) -> str:
        return read_secret(self.key_secret, self.key_secret_file)

    def callback_secret(self) -> str:
        return read_secret(self.callback_password, self.callback_password_file)

    def problems(self, ctx: CheckContext) -> list[str]:
        """Files and URLs always; the credentials only when this driver is chosen."""
        key = f"drivers.{NAME}"
        out = cloud.setting_problems(
            {f"{key}.key_secret_file": self.key_secret_file,
             f"{key}.callback_password_file": self.callback_password_file},
            {f"{key}.public_url": self.public_url, f"{key}.api_url": self.api_url})
        if ctx.chosen:
            for name, value in (("project_id", self.project_id), ("key_id", self.key_id)):
                if not value:
                    out.append(f"{key}.{name}: required by dispatch.driver = {NAME}")
            if not (self.key_secret or self.key_secret_file):
                out.append(f"{key}.key_secret: required (or key_secret_file)")
            if self.public_url and not (self.callback_password or self.callback_password_file):
                out.append(f"{key}.callback_password: required with public_url "
                           "(callbacks are authenticated with it)")
        return out

LABEL = "mailgw-key"
STATUSES = ("QUEUED", "IN_PROGRESS", "COMPLETED", "FAILURE")
KEEP = ("id", "status", "direction", "numberOfPages", "pagesSentSuccessfully", "errorType",
        "errorCode", "errorMessage", "createTime", "completedTime", "retryCount")

# errorType CALL_ERROR / FAX_ERROR codes (the API's "Fax Error Messages") → our results.
CALL_ERRORS: dict[int, tuple[str, bool]] = {
    11: (LINE_DROPPED, True),  # the call dropped prematurely
    15: (BUSY, True),  # congestion
    16: (NO_ANSWER, True),  # ring timeout
    17: (BUSY, True),
    19: (LINE_DROPPED, True),  # immediate hang-up
    30: (NO_ANSWER, True),  # no answer from a fax machine
    32: (NOT_FAX, False),  # incompatible destination
    34: (NOT_IN_SERVICE, False),  # phone number not operational
    43: (LINE_DROPPED, True),  # problem establishing connection
    49: (NOT_IN_SERVICE, False),  # the destination number is not active
}
FAX_ERRORS: dict[int, tuple[str, bool]] = {
    46: (PROVIDER_ERROR, True),  # insufficient funds
    48: (NO_ANSWER, True),  # no answer (the receiving machine may be out of paper)
    75: (CANCELLED, False),  # manually cancelled
    76: (PROVIDER_ERROR, True),  # cancelled: timeout exceeded
    113: (PROVIDER_ERROR, False),  # the file is not accessible
    132: (NOT_FAX, False),  # no fax tone detected
    133: (NOT_IN_SERVICE, False),  # number not permitted
}


def rank(fax: dict[str, Any]) -> tuple[str, int]:
    """The event key and rank of a fax state: final states outrank any progress."""
    status = str(fax.get("status"))
    if status in ("COMPLETED", "FAILURE"):
        return status, cloud.FINAL_RANK
    if status == "IN_PROGRESS":
        pages = _int(fax.get("pagesSentSuccessfully"))
        return f"IN_PROGRESS:{pages}", 20 + min(pages, 79)
    return status, 10


def _int(value: object) -> int:
    try:
        return max(int(str(value)), 0)
    except (TypeError, ValueError):
        return 0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def result_for(fax: dict[str, Any], request: CallRequest) -> CallResult:
    """A finished fax (COMPLETED or FAILURE) as a call result."""
    ref = str(fax.get("id") or "") or None
    before = request.first_page - 1  # pages already delivered: the whole document went again
    total = _int(fax.get("numberOfPages"))
    sent = _int(fax.get("pagesSentSuccessfully"))
    started, ended = _time(fax.get("createTime")), _time(fax.get("completedTime"))
    duration = max((ended - started).total_seconds(), 0.0) if started and ended else 0.0
    if fax.get("status") == "COMPLETED":
        pages = max((sent or total or request.pages_total or 0) - before, 0)
        return CallResult(DELIVERED, pages_sent=pages, duration=duration, provider_ref=ref)
    kind = str(fax.get("errorType") or "GENERAL_ERROR")
    code = _int(fax.get("errorCode"))
    text = str(fax.get("errorMessage") or kind.replace("_", " ").lower())[:300]
    if kind == "CALL_ERROR":
        result, retryable = CALL_ERRORS.get(code, (LINE_DROPPED, True))
    elif kind == "FAX_ERROR":
        result, retryable = FAX_ERRORS.get(code, (LINE_DROPPED, True))
    elif kind == "DOCUMENT_CONVERSION_ERROR":
        result, retryable = PROVIDER_ERROR, False
    elif kind == "LINE_ERROR":
        result, retryable = LINE_DROPPED, True
    else:  # GENERAL_ERROR, FATAL_ERROR, anything new
        result, retryable = PROVIDER_ERROR, True
    pages = max(sent - before, 0)
    if pages and result not in (CANCELLED,):
        result, retryable = LINE_DROPPED, True  # some pages went: resume the rest
    return CallResult(result, pages_sent=pages, duration=duration, provider_ref=ref,
                      retryable=retryable, error_code=f"{kind}/{code}" if code else kind,
                      error_text=text)


def parse_callback(headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
    """The fax object of a callback (JSON or multipart/form-data), or None."""
    event = sinch_receive.parse_event(headers, body)
    fax = event.fax if event is not None else None
    if fax is None or not fax.get("id") or fax.get("status") not in STATUSES:
        return None
    return fax


def facts(fax: dict[str, Any], source: str) -> dict[str, Any]:
    """What is kept of a fax object: never its callbackUrl (it carries credentials)."""
    return {**{k: fax[k] for k in KEEP if k in fax}, "source": source}


# Sinch's `resolution` for each quality (mailgw.documents.quality): it has STANDARD (98 lines per
# inch) and FINE (196) only, so `best` goes FINE (docs/drivers-cloud.md).
RESOLUTION = {"normal": "STANDARD", "high": "FINE", "best": "FINE"}


class SinchDriver(Driver):
    name = NAME
    channels = frozenset({"fax"})
    callback_routes = frozenset({CALLBACKS})
    # Sinch prints its own header on every page (headerText, default "-", with page numbers
    # on by default: its Fax API v3 documents them), so mailgw adds none (docs/fax-pages.md)
    own_header_line = True
    max_body = 50_000_000  # a JSON callback carries the fax, base64-encoded

    def __init__(self, settings: SinchSettings, ports: Ports):
        self.settings = settings
        self.events = ports.events
        self.lines = settings.lines
        self.retry = settings.retry
        secret = settings.secret()
        self.client = Client(settings.api_url, basic_auth(settings.key_id, secret),
                             timeout=settings.timeout, retries=settings.api_retries,
                             lines=settings.lines)
        self.token_key = cloud.derive_key(secret or settings.project_id, "sinch-callback")
        password = settings.callback_secret()
        self.callback_auth = (basic_auth(settings.callback_user, password)
                              if password else None)
        self.base = f"/v3/projects/{urllib.parse.quote(settings.project_id, safe='')}/faxes"
        self.receiver = sinch_receive.SinchReceiver(ports.received,
                                                    authenticated=password != "")

    # -- placing a fax -----------------------------------------------------------------------

    async def place_call(self, request: CallRequest) -> CallResult:
        if not request.document:
            return CallResult(PROVIDER_ERROR, error_text="no document to fax")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.max_call_time
        key_ref = f"key:{request.idempotency_key}"
        known = await asyncio.to_thread(self.events.events, NAME, key_ref)
        fax_id = str(known[0].payload.get("id", "")) if known else ""
        if not fax_id:
            try:
                fax = await self._send(request)
            except ApiError as exc:
                return CallResult(PROVIDER_ERROR, retryable=exc.retryable,
                                  error_code=f"HTTP {exc.status}" if exc.status else None,
                                  error_text=f"Sinch: {exc.text}"[:300])
            fax_id = str(fax["id"])
            await asyncio.to_thread(self.events.record, NAME, key_ref, "submitted", 0,
                                    {"id": fax_id})
            await self._store(fax, "send")
        log.info("fax_submitted", fax_id=fax_id, delivery_id=request.delivery_id)
        found = await cloud.wait_final(
            self.events, NAME, fax_id, deadline=deadline, poll=lambda: self._poll(fax_id),
            poll_every=self.settings.poll_interval if self.settings.public_url else min(
                self.settings.poll_interval, 10.0))
        if found is None:
            return CallResult(TIMEOUT, provider_ref=fax_id, retryable=True,
                              error_text="Sinch gave no final status in time")
        return result_for(found[0].payload, request)

    async def _send(self, request: CallRequest) -> dict[str, Any]:
        s = self.settings
        fields = [("to", request.number), ("maxRetries", "0"),
                  ("resolution", RESOLUTION.get(request.quality, "FINE")),
                  (f"labels[{LABEL}]", request.idempotency_key)]
        if s.from_number:
            fields.append(("from", s.from_number))
        if s.service_id:
            fields.append(("serviceId", s.service_id))
        if s.public_url:
            fields += [("callbackUrl", self._callback_url(request)),
                       ("callbackUrlContentType", "application/json"),
                       ("inProgressNotifications", "true")]
        ctype, body = multipart(fields, [("file", "document.pdf", "application/pdf",
                                          request.document or b"")])
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await self.client.call("POST", self.base, body=body, content_type=ctype,
                                               retry_timeouts=False, retries=0)
                fax = reply.json()
                if not fax.get("id"):
                    raise ApiError(reply.status, "no fax id in the answer", retryable=True)
                return fax
            except ApiError as exc:
                if not exc.retryable or attempt > s.api_retries:
                    raise
                if exc.status != 429:  # the request may have gone through: look first
                    found = await self._find(request)
                    if found is not None:
                        return found
                log.info("sinch_send_retry", status=exc.status, attempt=attempt)
                await asyncio.sleep(min(2.0 ** (attempt - 1), 30.0) * (0.5 + random.random()))

    async def _find(self, request: CallRequest) -> dict[str, Any] | None:
        """A fax of ours for this call (by its label), sent by a request that timed out."""
        query = urllib.parse.urlencode({"to": request.number, "direction": "OUTBOUND",
                                        "pageSize": "100"})
        try:
            reply = await self.client.call("GET", f"{self.base}?{query}")
            faxes = reply.json().get("faxes") or []
        except ApiError:
            return None
        for fax in faxes:
            labels = fax.get("labels") if isinstance(fax, dict) else None
            if isinstance(labels, dict) and labels.get(LABEL) == request.idempotency_key:
                return dict(fax)
        return None

    def _callback_url(self, request: CallRequest) -> str:
        token = cloud.sign(self.token_key, {"d": request.delivery_id},
                           self.settings.max_call_time + 4 * 86400)  # the API retries ~3 days
        parts = urllib.parse.urlsplit(self.settings.public_url.rstrip("/"))
        netloc = parts.netloc
        if self.callback_auth is not None:
            user = urllib.parse.quote(self.settings.callback_user, safe="")
            password = urllib.parse.quote(self.settings.callback_secret(), safe="")
            netloc = f"{user}:{password}@{netloc}"
        return urllib.parse.urlunsplit((parts.scheme, netloc,
                                        f"{parts.path}/callbacks/{NAME}/{token}", "", ""))

    async def _poll(self, fax_id: str) -> None:
        reply = await self.client.call("GET", f"{self.base}/{urllib.parse.quote(fax_id)}")
        fax = reply.json()
        if fax.get("status") in STATUSES:
            await self._store({**fax, "id": fax_id}, "poll")

    async def _store(self, fax: dict[str, Any], source: str) -> bool:
        status, level = rank(fax)
        new = await asyncio.to_thread(self.events.record, NAME, str(fax["id"]), status, level,
                                      facts(fax, source))
        if new:
            cloud.notify(NAME, str(fax["id"]))
        return new

    # -- callbacks -----------------------------------------------------------------------

    async def close(self) -> None:
        await self.client.close()

    async def handle_callback(self, request: CallbackRequest) -> HttpReply:
        if self.callback_auth is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), self.callback_auth.encode()):
                log.warning("callback_refused", driver=NAME, reason="credentials")
                return (401, b"credentials required\n", "text/plain; charset=utf-8",
                        {"WWW-Authenticate": 'Basic realm="mailgw"'})
        if request.rest.split("/", 1)[0] == sinch_receive.INCOMING:  # a fax for us
            return await self.receiver.handle(request)
        if cloud.verify(self.token_key, request.rest.split("/", 1)[0]) is None:
            log.warning("callback_refused", driver=NAME, reason="token")
            return 403, b"forbidden\n", "text/plain; charset=utf-8", {}
        fax = parse_callback(request.headers, request.body)
        if fax is None:
            return 400, b"not a fax event\n", "text/plain; charset=utf-8", {}
        if fax.get("direction") == "INBOUND":
            return 200, b"", "text/plain; charset=utf-8", {}
        new = await self._store(fax, "callback")
        log.info("fax_callback", fax_id=fax["id"], status=fax["status"], duplicate=not new)
        return 200, b"", "text/plain; charset=utf-8", {}
