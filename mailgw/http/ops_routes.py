"""GET /metrics (Prometheus) and GET /healthz: for a scraper and a health checker.

/healthz answers 200 when every check passes, else 503 naming the failing ones: the store
answers (within STORE_TIMEOUT), the oldest unsent ack or notice is younger than
`[http] health_outbox_age` (notify role), the SMTP listener is bound (smtp role).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mailgw.ops import metrics
from mailgw.store.metrics import probe_store

if TYPE_CHECKING:
    from mailgw.app import App

STORE_TIMEOUT = 5.0  # the store's queries for one /metrics or /healthz
GET = ["GET", "HEAD"]  # Starlette answers HEAD for a GET route; listed for the Allow field


def routes(app: App) -> list[BaseRoute]:
    async def index(_: Request) -> Response:
        return PlainTextResponse("mailgw: GET /metrics (Prometheus), GET /healthz\n")

    async def metrics_page(_: Request) -> Response:
        body = await metrics.render(app.store, STORE_TIMEOUT)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    async def healthz(_: Request) -> Response:
        status, report = await health(app)
        return Response(json.dumps(report, indent=1).encode() + b"\n", status,
                        media_type="application/json")

    return [Route("/", index, methods=GET), Route("/metrics", metrics_page, methods=GET),
            Route("/healthz", healthz, methods=GET)]


async def health(app: App) -> tuple[int, dict[str, Any]]:
    """200 when every check passes, else 503 naming the failing checks."""
    checks: dict[str, dict[str, Any]] = {}
    age: float | None = None
    try:
        age = await asyncio.wait_for(
            asyncio.to_thread(probe_store, app.store, STORE_TIMEOUT), STORE_TIMEOUT)
        checks["store"] = {"ok": True, "dialect": app.store.dialect}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        error = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        checks["store"] = {"ok": False, "error": error}
    if "notify" in app.roles:
        threshold = app.settings.http.health_outbox_age
        if age is None:
            checks["outbox"] = {"ok": False, "error": "the store did not answer"}
        else:
            checks["outbox"] = {"ok": age < threshold,
                                "oldest_unsent_age_seconds": round(age, 3),
                                "threshold_seconds": threshold}
    listeners: dict[str, Any] = {"ok": True}
    if "smtp" in app.roles:
        server = app.smtp_server
        bound = server is not None and server.is_serving() and bool(server.sockets)
        address = app.smtp_address
        listeners["smtp"] = f"{address[0]}:{address[1]}" if bound and address else None
        listeners["ok"] = bound
    checks["listeners"] = listeners
    failing = [name for name, check in checks.items() if not check["ok"]]
    report = {"status": "fail" if failing else "ok", "failing": failing,
              "roles": list(app.roles), "checks": checks}
    return (503 if failing else 200), report
