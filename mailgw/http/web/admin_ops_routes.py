"""The operators' view of the machine: the queue right now (numbers and jobs by state, the
oldest due, calls in flight per node of the configured driver), the dead outbox mails
(retry or drop, each journaled) and the Audit page (the journal, newest first)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import operators
from mailgw.http.web import admin_guard, i18n
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.notify.words import local_time
from mailgw.store import admin as rows
from mailgw.store.models import utcnow
from mailgw.vocab import DELIVERY_STATES, JOB_STATES

PER_PAGE = 50
OUTBOX_DONE = ("retried", "dropped", "gone")


def lines_of(web: Web) -> tuple[str, int]:
    """The configured driver and the calls one node places at once with it (the smaller of
    the driver's lines and `[dispatch] workers`, as the dispatcher takes them)."""
    name = web.settings.dispatch.driver
    try:
        lines = int(getattr(web.settings.drivers[name], "lines", 1) or 1)
    except KeyError:
        lines = 1
    return name, max(1, min(lines, web.settings.dispatch.workers))


def routes(web: Web, wake: Callable[[], None]) -> list[BaseRoute]:
    async def queue(request: Request, me: Current) -> Response:
        t = i18n.words(me.lang)
        now = await web.tx(rows.queue_now)

        def when(value: Any) -> str:
            return local_time(value, me.tz, me.lang) if value is not None else t["q_none"]
        driver, lines = lines_of(web)
        busy = sorted(now.busy.items()) or [("—", 0)]
        extra = sorted(set(now.deliveries) - set(DELIVERY_STATES))
        return web.page(request, "admin_queue.html", me, {
            "deliveries": [(st, t.get(st, st), now.deliveries.get(st, 0))
                           for st in (*DELIVERY_STATES, *extra)],
            "jobs": [(st, t.get(f"job_{st}", t.get(st, st)), now.jobs.get(st, 0))
                     for st in JOB_STATES],
            "oldest_due": when(now.oldest_due), "next_due": when(now.next_due),
            "busy": [(driver, node, n, lines) for node, n in busy],
            "unsent": now.outbox_unsent, "dead": now.outbox_dead,
            "taken": t["q_taken"].format(when=local_time(utcnow(), me.tz, me.lang))})

    async def outbox(request: Request, me: Current) -> Response:
        t = i18n.words(me.lang)
        mails = await web.tx(rows.dead_mails)
        done = request.query_params.get("done", "")
        message = {"retried": t["done_retried"], "dropped": t["done_dropped"],
                   "gone": t["o_gone"]}.get(done, "")
        return web.page(request, "admin_outbox.html", me, {
            "mails": [{"id": m.id, "kind": m.kind, "job_id": m.job_id, "to": m.rcpt_to,
                       "tries": m.tries, "dead_at": local_time(m.dead_at, me.tz, me.lang),
                       "error": m.last_error[:300]} for m in mails],
            "message": message, "gone": done == "gone"})

    def outbox_action(work: Callable[[Session, operators.Operator, int], bool], done: str
                      ) -> Callable[[Request, Current, FormData], Any]:
        async def endpoint(request: Request, me: Current, _form: FormData) -> Response:
            mail_id = request.path_params["mail_id"]
            ok = await web.tx(lambda s: work(s, admin_guard.operator(me), mail_id))
            if ok and done == "retried":
                wake()  # the outbox sends it now rather than at its next poll
            return web.redirect(f"/admin/outbox?done={done if ok else 'gone'}")
        return endpoint

    async def audit(request: Request, me: Current) -> Response:
        t = i18n.words(me.lang)
        raw = request.query_params.get("page", "1")
        page = int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1
        found, total = await web.tx(lambda s: rows.journal(s, offset=(page - 1) * PER_PAGE,
                                                          limit=PER_PAGE))
        pages = max(1, -(-total // PER_PAGE))
        return web.page(request, "admin_audit.html", me, {
            "actions": [{"id": a.id, "when": local_time(a.at, me.tz, me.lang),
                         "who": a.actor, "action": t.get(f"act_{a.action}", a.action),
                         "code": a.action, "target": a.target,
                         "detail": _detail(a.detail)} for a in found],
            "page": page, "pages": pages, "total": total})

    return [Route("/admin/queue", admin_guard.page(web, queue)),
            Route("/admin/outbox", admin_guard.page(web, outbox)),
            Route("/admin/outbox/{mail_id:int}/retry",
                  admin_guard.form(web, outbox_action(operators.retry_mail, "retried")),
                  methods=["POST"]),
            Route("/admin/outbox/{mail_id:int}/drop",
                  admin_guard.form(web, outbox_action(operators.drop_mail, "dropped")),
                  methods=["POST"]),
            Route("/admin/audit", admin_guard.page(web, audit))]


def _detail(text: str | None) -> str:
    """The JSON detail as `key: value` pairs, for people."""
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    return "; ".join(f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v}"
                     for k, v in data.items())
