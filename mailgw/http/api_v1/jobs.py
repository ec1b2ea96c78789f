"""/api/v1/jobs: create (mailgw.http.api_v1.jobs_create), list, show, cancel, retry and the
CSV report, each within the token's account (another account's job is a 404, as one that
does not exist). Cancel and retry go through the jobs service, which writes their notices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.http.api_v1 import jobs_create
from mailgw.http.api_v1.common import (
    ApiProblem,
    Endpoint,
    Operation,
    decode_cursor,
    encode_cursor,
    int_path,
    invalid,
    not_found,
    ok,
    operation,
    parse_time,
    query,
)
from mailgw.http.streaming import csv_response
from mailgw.jobs import reports, views
from mailgw.jobs.service import RetryRefused
from mailgw.recipients import normalize_number
from mailgw.store import api_v1 as rows
from mailgw.vocab import JOB_STATES

if TYPE_CHECKING:
    from mailgw.app import App

MAX_LIMIT = 200
QUERY = {"state": 20, "from": 64, "to": 64, "ref": 200, "number": 40, "limit": 10,
         "cursor": 200}  # the listing's parameters and their longest values


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _list(app: App, principal: Principal, q: dict[str, str]) -> dict[str, Any]:
    state = q.get("state")
    if state is not None and state not in JOB_STATES:
        raise invalid(f"state: one of {', '.join(JOB_STATES)}")
    limit = _limit(q.get("limit"))
    before = decode_cursor(q["cursor"]) if "cursor" in q else None
    with app.store.read() as s:
        account = rows.account(s, principal.account_id)
        if account is None:
            raise not_found("account")
        since = parse_time(q["from"], "from", account.tz) if "from" in q else None
        until = parse_time(q["to"], "to", account.tz) if "to" in q else None
        number = None
        if q.get("number"):
            number = normalize_number(q["number"], account.region)
            if number is None:
                return {"jobs": [], "next_cursor": None}
        found = rows.jobs(s, account.id, state=state, since=since, until=until,
                          ref=q.get("ref") or None, number=number, before_id=before,
                          limit=limit + 1)
        shown = [views.job_dict(j, account.email) for j in found[:limit]]
    more = len(found) > limit
    return {"jobs": shown, "next_cursor": encode_cursor(shown[-1]["id"]) if more else None}


async def list_jobs(app: App, request: Request, principal: Principal) -> Response:
    q = query(request, QUERY)
    return ok(await run_in_threadpool(_list, app, principal, q))


def _show(app: App, principal: Principal, job_id: int) -> dict[str, Any]:
    with app.store.read() as s:
        job = rows.job(s, principal.account_id, job_id)
        if job is None:
            raise not_found(f"job {job_id}")
        return views.job_dict(job, principal.account_email)


async def show_job(app: App, request: Request, principal: Principal) -> Response:
    job_id = int_path(request, "job_id", "job")
    return ok(await run_in_threadpool(_show, app, principal, job_id))


def _owned(app: App, principal: Principal, job_id: int) -> None:
    with app.store.read() as s:
        if not rows.owns_job(s, principal.account_id, job_id):
            raise not_found(f"job {job_id}")


def _cancel(app: App, principal: Principal, job_id: int) -> dict[str, Any]:
    _owned(app, principal, job_id)
    report = jobs_create.intake_of(app).jobs.cancel(job_id)
    if report is None:
        raise not_found(f"job {job_id}")
    if not report.cancelled and not report.requested:
        raise ApiProblem(409, "code-96", "nothing to cancel: every delivery is final", code=96)
    return {"cancelled": report.cancelled, "requested": report.requested,
            "untouched": report.untouched, "job": _show(app, principal, job_id)}


async def cancel_job(app: App, request: Request, principal: Principal) -> Response:
    job_id = int_path(request, "job_id", "job")
    return ok(await run_in_threadpool(_cancel, app, principal, job_id))


def _retry(app: App, principal: Principal, job_id: int) -> dict[str, Any]:
    _owned(app, principal, job_id)
    try:
        count = jobs_create.intake_of(app).jobs.retry(job_id)
    except RetryRefused as exc:
        raise ApiProblem(409, "retry-refused", f"the job cannot be retried: {exc}") from None
    if count is None:
        raise not_found(f"job {job_id}")
    if not count:
        raise ApiProblem(409, "nothing-to-retry", "no failed or expired delivery to retry")
    return {"queued": count, "job": _show(app, principal, job_id)}


async def retry_job(app: App, request: Request, principal: Principal) -> Response:
    job_id = int_path(request, "job_id", "job")
    body = await run_in_threadpool(_retry, app, principal, job_id)
    app.wake()  # the dispatcher takes the deliveries now rather than at its next poll
    return ok(body)


async def job_report(app: App, request: Request, principal: Principal) -> Response:
    """Streamed (mailgw.http.streaming): a campaign's report has 100,000 lines."""
    job_id = int_path(request, "job_id", "job")

    def opener(s: Session) -> Iterator[str] | None:
        if not rows.owns_job(s, principal.account_id, job_id):
            return None
        return reports.job_csv_chunks(s, job_id)

    response = await csv_response(app.store, opener, f"job-{job_id}.csv")
    if response is None:
        raise not_found(f"job {job_id}")
    return response


def routes(app: App, gate: TokenGate) -> list[BaseRoute]:
    def op(scope: str, handler: Operation) -> Endpoint:
        return operation(app, gate, scope, handler)

    return [
        Route("/api/v1/jobs", op("jobs:write", jobs_create.create), methods=["POST"]),
        Route("/api/v1/jobs", op("jobs:read", list_jobs), methods=["GET"]),
        Route("/api/v1/jobs/{job_id}", op("jobs:read", show_job), methods=["GET"]),
        Route("/api/v1/jobs/{job_id}/cancel", op("jobs:write", cancel_job), methods=["POST"]),
        Route("/api/v1/jobs/{job_id}/retry", op("jobs:write", retry_job), methods=["POST"]),
        Route("/api/v1/jobs/{job_id}/report.csv", op("jobs:read", job_report), methods=["GET"]),
    ]
