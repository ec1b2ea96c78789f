"""The REST API under /api/v1 (JSON, OpenAPI 3.1 at /api/v1/openapi.json, a page at
/api/docs). Each module gives its routes; none writes a job itself (intake decides and
commits requests as it does mail; the jobs service cancels and retries)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route

from mailgw.accounts.token_gate import TokenGate
from mailgw.http.api_v1 import account, groups, jobs, library, openapi, webhooks
from mailgw.http.api_v1.common import ApiProblem, Endpoint, problem_response

if TYPE_CHECKING:
    from mailgw.app import App

DOCS = openapi.docs_page()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


async def _document(request: Request) -> Response:
    return Response(openapi.DOCUMENT_BYTES, media_type="application/json")


async def _docs(request: Request) -> Response:
    return HTMLResponse(DOCS)


def _unknown(known: list[BaseRoute]) -> Endpoint:
    """A problem for a path no operation has (404), or a method it lacks (405 with Allow)."""

    async def endpoint(request: Request) -> Response:
        allowed = sorted({m for r in known if isinstance(r, Route) and r.methods
                          and r.matches(request.scope)[0] == Match.PARTIAL for m in r.methods})
        if allowed:
            return problem_response(ApiProblem(
                405, "method-not-allowed", f"{request.method} is not an operation here",
                headers={"Allow": ", ".join(allowed)}))
        return problem_response(ApiProblem(404, "not-found", "no such operation in /api/v1"))

    return endpoint


def routes(app: App) -> list[BaseRoute]:
    # One gate per application: wrong tokens counted per client address (with SMTP's
    # password guesses when this process has intake), requests per token limited.
    gate = TokenGate.of(app.store, app.settings, app.intake.guard if app.intake else None)
    known = [Route("/api/v1/openapi.json", _document, methods=["GET"]),
             Route("/api/docs", _docs, methods=["GET"]),
             *jobs.routes(app, gate), *account.routes(app, gate), *webhooks.routes(app, gate),
             *library.routes(app, gate), *groups.routes(app, gate)]
    return [*known, Route("/api/v1/{rest:path}", _unknown(known), methods=METHODS)]
