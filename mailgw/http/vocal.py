"""123-Vocal's /http.php: GET or POST, the code 80–91 first, then its sentence.

An integration written for 123-Vocal changes only the host name: the same parameters
(mailgw.intake.vocal_params), the same codes. The request is a voice mail to the gateway's
voice address as far as intake is concerned (`Intake.handle_request`), so the decision,
the credits, the cancels and the slowing of password guesses are the mail's.

The answer is what 123-Vocal's scripts read: HTTP 200 whatever the code, `text/plain;
charset=utf-8`, a first line `<code> <sentence>` in the account's language (French when no
account is known), a second line with the detail when there is one (the job number, the
numbers not valid, the unknown ref …). Scripts may read `X-Mailgw-Code` and
`X-Mailgw-Job` (job ids, comma-separated) instead. A password check that must wait (the
account is being guessed at) is not a code: 503 with Retry-After, as SMTP's 4xx.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mailgw.codes import Code, is_accepted, sentence
from mailgw.http.body import read_body
from mailgw.intake import requests, vocal_params
from mailgw.intake.guessing import ClientSlots
from mailgw.intake.model import Envelope

if TYPE_CHECKING:
    from mailgw.app import App

PATH = "/http.php"
DEFAULT_LANG = "fr"  # 123-Vocal's users are French
RETRY_AFTER = 60  # seconds: the password checks' budget is counted per minute
CLIENT_WAIT = 30.0  # a client with wrong guesses waits this long for one of its slots
MAX_FIELDS = 50
MAX_PART = 64 * 1024  # one value; the Subject's own cap (94) comes after
MAX_BODY = 256 * 1024  # an urlencoded body


def answer(code: int, lang: str, detail: str = "", job_ids: tuple[int, ...] = ()
           ) -> PlainTextResponse:
    """The 123-Vocal answer: HTTP 200, the code first."""
    lines = [f"{code} {sentence(code, lang or DEFAULT_LANG)}"]
    if detail:
        lines.append(" ".join(detail.split()))
    headers = {"X-Mailgw-Code": str(code)}
    if job_ids:
        headers["X-Mailgw-Job"] = ",".join(map(str, job_ids))
    return PlainTextResponse("\n".join(lines) + "\n", headers=headers)


def busy() -> PlainTextResponse:
    """Not an answer to the request: try again later (nothing was decided, nothing written)."""
    return PlainTextResponse("Réessayez plus tard / Try again later\n", status_code=503,
                             headers={"Retry-After": str(RETRY_AFTER)})


async def _params(request: Request) -> dict[str, str]:
    """The query's values, a POST body's over them (mailgw.intake.vocal_params.values)."""
    query = vocal_params.decode_pairs(request.scope.get("query_string", b""))
    if request.method != "POST":
        return vocal_params.values(query)
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":  # a malformed one, or one with a file: Starlette's 400
        async with request.form(max_files=0, max_fields=MAX_FIELDS,
                                max_part_size=MAX_PART) as form:
            return vocal_params.values(query, {k: v for k, v in form.items()
                                               if isinstance(v, str)})
    if "content-length" not in request.headers and "transfer-encoding" not in request.headers:
        return vocal_params.values(query)  # a POST without a body: the query alone, as PHP
    body = await read_body(request, MAX_BODY)
    if isinstance(body, Response):
        raise HTTPException(body.status_code)
    return vocal_params.values(query, vocal_params.decode_pairs(body))


def routes(app: App) -> list[BaseRoute]:
    slots: list[ClientSlots] = []  # made on first use, in the server's event loop

    async def http_php(request: Request) -> Response:
        if request.method == "HEAD":  # Starlette adds it to GET; it must not send anything
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        read = vocal_params.read(await _params(request))  # a broken form: Starlette's 400
        if isinstance(read, Code):  # 87–90: no account read, nothing written
            return answer(read, DEFAULT_LANG)
        intake = app.intake
        if intake is None:  # not started yet (every role that serves http.php makes one)
            return busy()
        ip = request.client.host if request.client else None
        if not slots:
            slots.append(ClientSlots(intake.guard, CLIENT_WAIT))
        async with slots[0].hold(ip) as free:
            if not free:
                return busy()
            key = request.headers.get("Idempotency-Key") or None
            mail = requests.request_mail(
                sender=read.email, subject_line=read.subject, options=read.options,
                message_id=requests.message_id(f"http.php\n{read.email.lower()}", key))
            voice = intake.settings.gateway.voice_address
            env = Envelope(mail_from=read.email, rcpt_tos=(voice,), ack_mail=False, client_ip=ip)
            result = await run_in_threadpool(intake.handle_request, mail, env)
        if result.delay:  # a wrong guess, or a guesser's address: the answer is held (the
            await asyncio.sleep(result.delay)  # client's slot freed first, as SMTP's DATA)
        if result.deferred or result.code is None:
            return busy()
        if result.job_ids and is_accepted(result.code):
            app.wake()  # the dispatcher takes the new job now rather than at its next poll
        return answer(result.code, result.lang, result.detail, result.job_ids)

    return [Route(PATH, http_php, methods=["GET", "POST"])]
