"""The job page's media: the fax's pages as pictures (drawn in the sandbox from the stored
fax document, cached, mailgw.http.web.thumbs) and the voice job's sound for an `<audio>`
player. Both only for the account's own job (another's is not found, 404), only while the
job still has its document (the retention purge drops it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.documents.sandbox import Limits
from mailgw.http.web.pages import Web, secured
from mailgw.http.web.sessions import Current
from mailgw.http.web.thumbs import SHOWN, Thumbs
from mailgw.store import web_media as rows

PICTURES = ("application/pdf", "image/tiff")
CACHE = "private, max-age=3600"  # the page of a job never changes; only its owner sees it


def media_view(media: rows.Media | None, job_id: int) -> dict[str, Any]:
    """What job.html shows of the media: the pages' picture links, or the sound's."""
    if media is None:
        return {"page_images": [], "more_pages": 0, "sound": ""}
    if media.channel == "fax" and media.type in PICTURES and media.pages:
        shown = min(media.pages, SHOWN)
        return {"page_images": [(n, f"/jobs/{job_id}/pages/{n}.png") for n in
                                range(1, shown + 1)],
                "more_pages": media.pages - shown, "sound": ""}
    if media.channel == "voice" and media.type.startswith("audio/"):
        return {"page_images": [], "more_pages": 0, "sound": f"/jobs/{job_id}/sound"}
    return {"page_images": [], "more_pages": 0, "sound": ""}


def routes(web: Web) -> list[BaseRoute]:
    thumbs = Thumbs(Limits.of(web.settings.limits))

    async def page_image(request: Request, me: Current) -> Response:
        job_id, page = request.path_params["job_id"], request.path_params["page"]
        media = await web.tx(lambda s: rows.media(s, me.account_id, job_id))
        if media is None or media.type not in PICTURES or not 1 <= page <= min(
                media.pages, SHOWN):
            thumbs.forget(job_id)
            return web.not_found(request, me)
        png = thumbs.cached(job_id, page)
        if png is None:
            fax = await web.tx(lambda s: rows.document(s, me.account_id, job_id))
            png = await run_in_threadpool(thumbs.draw, job_id, page, fax) if fax else None
        if png is None:
            return web.not_found(request, me)
        return secured(Response(png, media_type="image/png",
                                headers={"Cache-Control": CACHE}))

    async def sound(request: Request, me: Current) -> Response:
        job_id = request.path_params["job_id"]

        def read(s: Session) -> tuple[rows.Media, bytes] | None:
            media = rows.media(s, me.account_id, job_id)
            if media is None or media.channel != "voice":
                return None
            data = rows.document(s, me.account_id, job_id)
            return (media, data) if data else None
        found = await web.tx(read)
        if found is None:
            return web.not_found(request, me)
        media, data = found
        ext = media.type.rpartition("/")[2] or "wav"
        return secured(Response(data, media_type=media.type, headers={
            "Cache-Control": CACHE,
            "Content-Disposition": f'inline; filename="mailgw-job-{job_id}.{ext}"'}))

    return [Route("/jobs/{job_id:int}/pages/{page:int}.png", web.signed_in(page_image)),
            Route("/jobs/{job_id:int}/sound", web.signed_in(sound))]
