"""/api/v1/library: the account's recorded voice messages (scope library). An upload goes
through intake as a mail with a sound and a ref but no number would (`pass::REF:` to the
voice address): the same checks and conversion in the sandbox, the same codes (90, 91,
93, 94) when it is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import voice
from mailgw.accounts.call_options import normalize_ref
from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.codes import is_accepted
from mailgw.http.api_v1.common import (
    ApiProblem,
    code_problem,
    invalid,
    no_content,
    not_found,
    ok,
    operation,
    read_form,
)
from mailgw.http.api_v1.jobs_create import intake_of
from mailgw.intake import requests
from mailgw.intake.model import Envelope

if TYPE_CHECKING:
    from mailgw.app import App


def message_dict(m: voice.MessageInfo) -> dict[str, Any]:
    return {"ref": m.ref, "duration": round(m.duration, 2),
            "created_at": m.created_at.isoformat(), "source_name": m.source_name}


def _list(app: App, principal: Principal) -> list[dict[str, Any]]:
    with app.store.read() as s:
        return [message_dict(m) for m in voice.list_messages(s, principal.account_id)]


async def list_messages(app: App, request: Request, principal: Principal) -> Response:
    return ok({"messages": await run_in_threadpool(_list, app, principal)})


async def upload_message(app: App, request: Request, principal: Principal) -> Response:
    most = app.settings.smtp.max_message_size
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > most:
        raise ApiProblem(413, "too-large", f"the request is over {most} bytes", code=94)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ApiProblem(415, "unsupported-media-type", "expected multipart/form-data")
    form = await read_form(request, max_files=1, max_fields=10, max_part_size=10_000)
    ref, sound = form.get("ref"), form.get("sound")
    if not isinstance(ref, str) or normalize_ref(ref) is None:
        raise invalid("ref: letters, digits, - and _ (at most 40)")
    if not isinstance(sound, UploadFile):
        raise code_problem(90, "en", "(no sound file in the field 'sound')")
    data = await sound.read()
    await form.close()
    mail = requests.request_mail(
        sender=principal.account_email, subject_line=requests.subject("", "", ref),
        message_id=requests.message_id(f"api-library:{principal.account_id}", None),
        files=[requests.file(sound.filename or "sound", sound.content_type or "", data)])
    env = Envelope(mail_from=principal.account_email,
                   rcpt_tos=(app.settings.gateway.voice_address,),
                   auth_login=principal.account_email, ack_mail=False,
                   client_ip=request.client.host if request.client else None)
    result = await run_in_threadpool(intake_of(app).handle_request, mail, env)
    if result.code is None or not is_accepted(result.code):
        raise code_problem(result.code or 93, result.lang, result.detail)
    key = normalize_ref(ref)
    stored = [m for m in await run_in_threadpool(_list, app, principal) if m["ref"] == key]
    if not stored:
        raise ApiProblem(500, "internal", "the message was not stored")
    return ok(stored[0], 201, {"Location": f"/api/v1/library/{key}"})


def _delete(app: App, principal: Principal, ref: str) -> bool:
    with app.store.tx() as s:
        return voice.delete_message(s, principal.account_id, ref)


async def delete_message(app: App, request: Request, principal: Principal) -> Response:
    ref = request.path_params["ref"]
    if not await run_in_threadpool(_delete, app, principal, ref):
        raise not_found(f"message {ref}")
    return no_content()


def routes(app: App, gate: TokenGate) -> list[BaseRoute]:
    return [
        Route("/api/v1/library", operation(app, gate, "library", list_messages), methods=["GET"]),
        Route("/api/v1/library", operation(app, gate, "library", upload_message), methods=["POST"]),
        Route("/api/v1/library/{ref}", operation(app, gate, "library", delete_message),
              methods=["DELETE"]),
    ]
