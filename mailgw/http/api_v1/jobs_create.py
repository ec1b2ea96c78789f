"""POST /api/v1/jobs: a fax or voice job from a JSON body or a multipart upload.

The API writes no job itself: it says what it was given as request facts
(mailgw.intake.requests) and `Intake.handle_request` decides and commits it exactly as it
does a mail, with the token's account as the proven sender (as SMTP AUTH proves one). The
`Idempotency-Key` header becomes the request's Message-ID within the account, so the same
key gives the same job and the same answer, even when repeats arrive at once (the commit
path meets the unique key and answers with the first one's result).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from mailgw.accounts.tokens import Principal
from mailgw.codes import is_accepted, sentence
from mailgw.http.api_v1.common import (
    ApiProblem,
    code_problem,
    invalid,
    json_body,
    ok,
    parse_time,
    read_form,
    text_field,
)
from mailgw.inbound.model import Attachment
from mailgw.intake import requests
from mailgw.intake.model import Envelope, IntakeResult
from mailgw.jobs import views
from mailgw.store import api_v1 as rows
from mailgw.vocab import CHANNELS, VOICE

if TYPE_CHECKING:
    from mailgw.app import App
    from mailgw.intake.service import Intake

# The body lines a job may carry (mailgw.accounts.call_options, documents.quality,
# documents.cover_options, intake.trial).
OPTIONS = ("quality", "cover", "header", "preview", "test", "transfer", "welcome", "callerid",
           "retries", "voicemail")
FIELDS = ("channel", "numbers", "ref", "comment", "send_at", "library_ref", "options")
MAX_KEY = 200
MAX_NUMBERS = 1000  # numbers in the request itself (a contact group may hold more)
STATUS = {83: 402}  # a refusal's HTTP status; the others are 422


def intake_of(app: App) -> Intake:
    """The app's intake (the SMTP and IMAP roles make it; an HTTP-only node makes it here)."""
    if app.intake is None:
        from mailgw.intake.service import Intake  # late import: only an HTTP-only node needs it
        from mailgw.jobs.service import Jobs  # late import: only an HTTP-only node needs it
        from mailgw.notify.render import renderer_for  # late import: as above (Jinja2)

        renderer = renderer_for(app.settings)
        app.intake = Intake(app.store, app.settings, renderer,
                            jobs=Jobs(app.store, app.settings, renderer))
    return app.intake


def _field(value: str, name: str) -> str:
    """A Subject field: no ':' (it separates them) and no line break."""
    if ":" in value or "\n" in value or "\r" in value:
        raise invalid(f"{name}: must not contain ':' or line breaks")
    return value.strip()


def _numbers(raw: Any) -> str:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise invalid("numbers: expected a list of strings")
    if len(raw) > MAX_NUMBERS:
        raise invalid(f"numbers: more than {MAX_NUMBERS} (use a contact group)")
    return ",".join(_field(n, "numbers") for n in raw if n.strip())


def _options(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid("options: expected an object")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key not in OPTIONS:
            raise invalid(f"options: unknown option {key!r} (one of {', '.join(OPTIONS)})")
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or "\n" in value or "\r" in value or len(value) > 200:
            raise invalid(f"options.{key}: expected a short string, a number or a boolean")
        out[key] = value
    return out


def _when(send_at: str, tz: str) -> str:
    """ISO 8601 → the Subject's `HHMMDDMMYYYY` in the account's zone."""
    if not send_at:
        return ""
    moment = parse_time(send_at, "send_at", tz)
    try:
        local = moment.astimezone(ZoneInfo(tz))
    except (OverflowError, ValueError):
        raise invalid("send_at: out of range") from None
    if not 2000 <= local.year <= 9999:
        raise invalid("send_at: out of range")
    return local.strftime("%H%M%d%m%Y")


def _subject(body: dict[str, Any], tz: str) -> tuple[str, str]:
    """(channel, Subject) from the request's fields; the password stays empty (the token
    proves the account)."""
    channel = body.get("channel")
    if channel not in CHANNELS:
        raise invalid(f"channel: expected one of {', '.join(CHANNELS)}")
    ref = _field(text_field(body, "ref", most=200), "ref")
    library_ref = _field(text_field(body, "library_ref", most=40), "library_ref")
    if library_ref:
        if channel != VOICE:
            raise invalid("library_ref: only a voice job plays a library message")
        if ref and ref.lower() != library_ref.lower():
            raise invalid("ref: a voice job that plays library_ref carries it as its ref")
        ref = library_ref
    comment = text_field(body, "comment", most=1000)
    if "\n" in comment or "\r" in comment:
        raise invalid("comment: must not contain line breaks")
    when = _when(text_field(body, "send_at", most=64), tz)
    return channel, requests.subject("", _numbers(body.get("numbers", [])), ref,
                                     comment.strip(), when)


async def _multipart(request: Request, most: int) -> tuple[dict[str, Any], list[Attachment]]:
    """The form's fields as the JSON body's (numbers may repeat; an option is a field by its
    name) and its files as attachments."""
    form = await read_form(request, max_files=50, max_fields=200, max_part_size=1_000_000)
    body: dict[str, Any] = {"numbers": [], "options": {}}
    files: list[Attachment] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            if sum(f.size for f in files) + len(data) > most:
                raise ApiProblem(413, "too-large", f"the files are over {most} bytes", code=94)
            files.append(requests.file(value.filename, value.content_type or "", data,
                                       part=len(files) + 1))
        elif name == "numbers":
            body["numbers"] += [n for n in value.replace(";", ",").split(",") if n.strip()]
        elif name in OPTIONS:
            body["options"][name] = value
        else:
            body[name] = value
    await form.close()
    return body, files


def answer(app: App, result: IntakeResult, account_id: int) -> Response:
    """The answer to a create: 201 with the job (or 200 for a preview, which writes none), a
    problem with the code for a refusal. The same request again gets the same answer."""
    if result.deferred:
        raise ApiProblem(503, "try-later", "try again later",
                         headers={"Retry-After": str(max(1, round(result.delay or 5)))})
    if result.code is None:
        raise ApiProblem(500, "internal", "the request was not taken")
    if not is_accepted(result.code):
        raise code_problem(result.code, result.lang, result.detail,
                           status=STATUS.get(result.code, 422))
    with app.store.read() as s:
        jobs = [rows.job(s, account_id, job_id) for job_id in result.job_ids]
        shown = [views.job_dict(j, j.account.email) for j in jobs if j is not None]
    text = f"{sentence(result.code, result.lang or 'en')} {result.detail}".strip()
    body = {"code": result.code, "detail": text, "job_ids": list(result.job_ids),
            "job": shown[0] if shown else None}
    if not shown:
        return ok(body)
    return ok(body, 201, {"Location": f"/api/v1/jobs/{shown[0]['id']}"})


async def create(app: App, request: Request, principal: Principal) -> Response:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_KEY:
        raise invalid(f"Idempotency-Key: 1 to {MAX_KEY} characters")
    most = app.settings.smtp.max_message_size
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > most:
        raise ApiProblem(413, "too-large", f"the request is over {most} bytes", code=94)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == "multipart/form-data":
        body, files = await _multipart(request, most)
    else:
        body, files = await json_body(request, FIELDS), []
    tz = "UTC"
    if body.get("send_at"):  # only a time needs the account's zone: no read otherwise
        with app.store.read() as s:
            account = rows.account(s, principal.account_id)
            tz = account.tz if account is not None else "UTC"
    channel, subject_line = _subject(body, tz)
    mail = requests.request_mail(
        sender=principal.account_email, subject_line=subject_line,
        message_id=requests.message_id(f"api:{principal.account_id}", key),
        options=_options(body.get("options")), files=files)
    gateway = app.settings.gateway
    env = Envelope(mail_from=principal.account_email,
                   rcpt_tos=(gateway.voice_address if channel == VOICE else gateway.fax_address,),
                   auth_login=principal.account_email, ack_mail=False,
                   client_ip=request.client.host if request.client else None)
    result = await run_in_threadpool(intake_of(app).handle_request, mail, env)
    if result.job_ids and is_accepted(result.code or 0):
        app.wake()  # the dispatcher takes the new job now rather than at its next poll
    return await run_in_threadpool(answer, app, result, principal.account_id)
