"""Sent (RuFax's «Отправленные»): every job of the account, newest first, its outcome as
an icon and a word, with filters, pages of 25, and the CSV export of what is shown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.http.streaming import csv_response
from mailgw.http.web import filters, i18n
from mailgw.http.web.pages import Web, secured
from mailgw.http.web.sessions import Current
from mailgw.jobs.reports import jobs_csv_chunks
from mailgw.notify.words import local_time
from mailgw.store import web as rows
from mailgw.store.models import Job
from mailgw.vocab import FINAL, REACHED

ICONS = {"in_progress": "◔", "delivered_all": "✔", "delivered_none": "✖", "partial": "◑"}
EXPORT_MOST = 5000  # jobs in one export


def job_row(job: Job, me: Current, t: dict[str, str]) -> dict[str, Any]:
    total = len(job.deliveries)
    return {"id": job.id, "created": local_time(job.created_at, me.tz, me.lang),
            "channel": t[job.channel], "outcome": job.outcome,
            "icon": ICONS.get(job.outcome, "?"), "word": t.get(job.outcome, job.outcome),
            "ref": job.ref or "", "comment": job.comment or "",
            "reached": sum(1 for d in job.deliveries if d.state in REACHED),
            "final": sum(1 for d in job.deliveries if d.state in FINAL), "total": total,
            "pages": job.pages if job.channel == "fax" and job.pages else ""}


def routes(web: Web) -> list[BaseRoute]:
    async def sent(request: Request, me: Current) -> Response:
        t = i18n.words(me.lang)
        form = filters.parse(request.query_params, me.tz, me.region)
        offset = (form.page - 1) * filters.PER_PAGE

        def read(s: Session) -> tuple[list[dict[str, Any]], int]:
            jobs, total = rows.sent_jobs(s, me.account_id, form.query, offset=offset,
                                         limit=filters.PER_PAGE)
            return [job_row(j, me, t) for j in jobs], total

        shown, total = await web.tx(read)
        pages = max(1, -(-total // filters.PER_PAGE))
        return web.page(request, "sent.html", me, {
            "form": form, "jobs": shown, "total": total, "pages": pages,
            "outcomes": [(o, ICONS[o], t[o]) for o in filters.OUTCOMES],
            "ignored": ", ".join(t.get(f, f) for f in form.ignored)})

    async def export(request: Request, me: Current) -> Response:
        form = filters.parse(request.query_params, me.tz, me.region)
        whole = request.query_params.get("all") == "1"
        offset = 0 if whole else (form.page - 1) * filters.PER_PAGE
        limit = EXPORT_MOST if whole else filters.PER_PAGE

        def opener(s: Session) -> Iterator[str]:  # streamed: the deliveries in batches
            jobs, _ = rows.sent_jobs(s, me.account_id, form.query, offset=offset, limit=limit,
                                     with_deliveries=False)
            account = rows.account_of(s, me.account_id)
            return jobs_csv_chunks(s, [(j, account) for j in jobs])

        response = await csv_response(web.store, opener, "mailgw-sent.csv")
        assert response is not None  # an empty export is still a header
        return secured(response)

    return [Route("/sent", web.signed_in(sent)), Route("/sent.csv", web.signed_in(export))]
