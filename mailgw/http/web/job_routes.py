"""One job: each number with its state, CSID, pages x/y, times and every attempt with its
reason (the notice's content, live); cancel what has not gone out, retry the failed numbers,
download the report; the fax's pages as pictures or the sound (media_routes). A notice's
link (`<base_url>/jobs/<id>`) lands here after sign-in.
Another account's job is not found (404), never forbidden: its existence is not told."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.dispatch import states
from mailgw.http.streaming import csv_response
from mailgw.http.web import i18n
from mailgw.http.web.media_routes import media_view
from mailgw.http.web.pages import Web, secured
from mailgw.http.web.sent_routes import job_row
from mailgw.http.web.sessions import Current
from mailgw.jobs.reports import jobs_csv_chunks
from mailgw.jobs.service import RetryRefused
from mailgw.notify import words as notice_words
from mailgw.notify.messages import attempt_reason, international
from mailgw.store import web as rows
from mailgw.store import web_media
from mailgw.store.models import Job


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 9 else None


def job_view(job: Job, me: Current, t: dict[str, str]) -> dict[str, Any]:
    w = notice_words.words(me.lang)

    def when(value: Any) -> str:
        return notice_words.local_time(value, me.tz, me.lang)

    deliveries = []
    for d in job.deliveries:
        attempts = [{"started": when(a.started_at), "reason": attempt_reason(a, job.channel, w),
                     "pages": f"{a.pages_sent}/{a.pages_total}" if job.channel == "fax"
                     and a.pages_total else ""} for a in d.attempt_rows]
        deliveries.append({
            "number": international(d.number), "state": d.state, "word": t.get(d.state, d.state),
            "csid": d.csid or "", "attempt_count": d.attempts, "attempts": attempts,
            "pages": f"{d.pages_sent}/{d.pages_total}" if job.channel == "fax"
            and d.pages_total else "",
            "first": when(d.first_attempt_at), "finished": when(d.finished_at)})
    return job_row(job, me, t) | {
        "deliveries": deliveries, "send_at": when(job.send_at) if job.send_at else "",
        "document": job.document_name or "",
        "can_cancel": any(states.cancel_action(d.state) != states.ALREADY_FINAL
                          for d in job.deliveries),
        "can_retry": any(d.state in states.RETRYABLE for d in job.deliveries)}


def routes(web: Web) -> list[BaseRoute]:
    async def owned(me: Current, job_id: int) -> dict[str, Any] | None:
        t = i18n.words(me.lang)

        def read(s: Session) -> dict[str, Any] | None:
            job = rows.account_job(s, me.account_id, job_id)
            return None if job is None else job_view(job, me, t) | media_view(
                web_media.media(s, me.account_id, job_id), job_id)
        view: dict[str, Any] | None = await web.tx(read)
        return view

    async def show(request: Request, me: Current, message: str = "",
                   status: int = 200) -> Response:
        view = await owned(me, request.path_params["job_id"])
        if view is None:
            return web.not_found(request, me)
        t = i18n.words(me.lang)
        q = request.query_params
        cancelled, stopping, retried = (_int(q.get("cancelled")), _int(q.get("stopping")),
                                        _int(q.get("retried")))
        if not message and cancelled is not None:
            message = t["cancelled_msg"].format(n=cancelled, m=stopping or 0)
        elif not message and retried is not None:
            message = t["retried_msg"].format(n=retried) if retried else t["nothing_to_retry"]
        return web.page(request, "job.html", me, {"job": view, "message": message},
                        status=status)

    async def page(request: Request, me: Current) -> Response:
        return await show(request, me)

    async def cancel(request: Request, me: Current, _form: FormData) -> Response:
        job_id = request.path_params["job_id"]
        if await owned(me, job_id) is None:
            return web.not_found(request, me)
        report = await run_in_threadpool(web.jobs.cancel, job_id)
        if report is None:
            return web.not_found(request, me)
        return web.redirect(f"/jobs/{job_id}?cancelled={report.cancelled}"
                            f"&stopping={report.requested}")

    async def retry(request: Request, me: Current, _form: FormData) -> Response:
        job_id = request.path_params["job_id"]
        if await owned(me, job_id) is None:
            return web.not_found(request, me)
        try:
            again = await run_in_threadpool(web.jobs.retry, job_id)
        except RetryRefused as exc:
            t = i18n.words(me.lang)
            return await show(request, me, t["retry_refused"].format(why=exc), status=409)
        return web.redirect(f"/jobs/{job_id}?retried={again or 0}")

    async def report(request: Request, me: Current) -> Response:
        job_id = request.path_params["job_id"]

        def opener(s: Session) -> Iterator[str] | None:  # streamed: a campaign is 100,000 lines
            job = rows.account_job(s, me.account_id, job_id, with_deliveries=False)
            return None if job is None else jobs_csv_chunks(
                s, [(job, rows.account_of(s, me.account_id))])

        response = await csv_response(web.store, opener, f"mailgw-job-{job_id}.csv")
        return web.not_found(request, me) if response is None else secured(response)

    return [Route("/jobs/{job_id:int}", web.signed_in(page)),
            Route("/jobs/{job_id:int}/cancel", web.posted(cancel), methods=["POST"]),
            Route("/jobs/{job_id:int}/retry", web.posted(retry), methods=["POST"]),
            Route("/jobs/{job_id:int}/report.csv", web.signed_in(report))]
