"""Voice messages: the account's library. An upload goes through intake as the REST API's
does (mailgw.http.api_v1.library): a request with a sound and a ref but no number, to the
voice address, so the same checks and conversion in the sandbox, and the same codes (90, 91,
93, 94) with their sentences when it is refused. Each message can be listened to (an
`<audio>` element fed by a route of the account's own: another account's ref is not found),
deleted, and shows the Subject that plays it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import voice
from mailgw.accounts.call_options import normalize_ref
from mailgw.codes import is_accepted, sentence
from mailgw.http.api_v1.jobs_create import intake_of
from mailgw.http.web.pages import Web, secured
from mailgw.http.web.sessions import Current
from mailgw.intake import requests
from mailgw.intake.model import Envelope
from mailgw.notify.words import local_time

DONE = ("sound_deleted",)


def routes(web: Web) -> list[BaseRoute]:
    async def show(request: Request, me: Current, extra: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
        found = await web.tx(lambda s: voice.list_messages(s, me.account_id))
        messages = [{"ref": m.ref, "duration": f"{m.duration:.1f}",
                     "created": local_time(m.created_at, me.tz, me.lang),
                     "source": m.source_name or ""} for m in found]
        q = request.query_params
        message = ""
        stored = normalize_ref(q.get("stored", ""))
        t_stored = next((m for m in messages if m["ref"] == stored), None)
        if t_stored is not None:
            message = "stored"
        elif q.get("done", "") in DONE:
            message = q["done"]
        ctx = {"messages": messages, "message": message, "stored": t_stored, "error": "",
               "ref": "", "voice_address": web.settings.gateway.voice_address}
        return web.page(request, "library.html", me, ctx | (extra or {}), status=status)

    async def page(request: Request, me: Current) -> Response:
        return await show(request, me)

    async def refused(request: Request, me: Current, code: int, detail: str,
                      ref: str) -> Response:
        text = f"[{code}] {sentence(code, me.lang)}" + (f" {detail}" if detail else "")
        return await show(request, me, {"error": text, "ref": ref[:40]}, status=422)

    async def upload(request: Request, me: Current, form: FormData) -> Response:
        ref, sound = str(form.get("ref", "")).strip(), form.get("sound")
        data = await sound.read() if isinstance(sound, UploadFile) else b""
        await form.close()
        key = normalize_ref(ref)
        if key is None:
            return await refused(request, me, 91, "", ref)
        if not isinstance(sound, UploadFile) or not data:
            return await refused(request, me, 90, "", ref)
        mail = requests.request_mail(
            sender=me.email, subject_line=requests.subject("", "", key),
            message_id=requests.message_id(f"web-library:{me.account_id}", None),
            files=[requests.file(sound.filename or "sound", sound.content_type or "", data)])
        env = Envelope(mail_from=me.email, rcpt_tos=(web.settings.gateway.voice_address,),
                       auth_login=me.email, ack_mail=False, client_ip=web.client(request))
        result = await run_in_threadpool(intake_of(web.app).handle_request, mail, env)
        if result.code is None or not is_accepted(result.code):
            return await refused(request, me, result.code or 93, result.detail, ref)
        return web.redirect(f"/library?stored={key}")

    async def listen(request: Request, me: Current) -> Response:
        ref = request.path_params["ref"]

        def read(s: Session) -> bytes | None:
            found = voice.find_message(s, me.account_id, ref)
            return None if found is None else found.audio
        audio = await web.tx(read)
        if audio is None:
            return web.not_found(request, me)
        return secured(Response(audio, media_type="audio/wav",
                                headers={"Cache-Control": "private, no-store"}))

    async def delete(request: Request, me: Current, _form: FormData) -> Response:
        ref = request.path_params["ref"]
        if not await web.tx(lambda s: voice.delete_message(s, me.account_id, ref)):
            return web.not_found(request, me)
        return web.redirect("/library?done=sound_deleted")

    return [Route("/library", web.signed_in(page)),
            Route("/library", web.posted(upload, files=True), methods=["POST"]),
            Route("/library/{ref}/sound.wav", web.signed_in(listen)),
            Route("/library/{ref}/delete", web.posted(delete), methods=["POST"])]
