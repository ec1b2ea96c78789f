"""/api/v1/webhook: where the account's signed webhook events go (mailgw.notify.outbox:
POST, `X-Mailgw-Timestamp`, `X-Mailgw-Signature: sha256=HMAC(secret, "<ts>.<body>")`).
Events: `delivery.final` (one delivery's end) and `job.final`. Setting the URL makes a new
secret, shown in that answer only; later reads say whether one is set, never what it is.
admin only."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import accounts
from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.http.api_v1.common import invalid, json_body, no_content, not_found, ok, operation
from mailgw.store import api_v1 as rows

if TYPE_CHECKING:
    from mailgw.app import App



def _get(app: App, principal: Principal) -> dict[str, Any]:
    with app.store.read() as s:
        account = rows.account(s, principal.account_id)
        if account is None:
            raise not_found("account")
        return {"url": account.webhook_url, "secret_set": bool(account.webhook_secret)}


async def get_webhook(app: App, request: Request, principal: Principal) -> Response:
    return ok(await run_in_threadpool(_get, app, principal))


def _set(app: App, principal: Principal, url: str | None) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32) if url else ""
    with app.store.tx() as s:
        account = rows.account(s, principal.account_id)
        if account is None:
            raise not_found("account")
        try:
            accounts.update_account(s, account.email, webhook_url=url or "none",
                                    webhook_secret=secret)
        except accounts.AccountError as exc:
            raise invalid(str(exc)) from None
    return {"url": url, "secret": secret or None}


async def put_webhook(app: App, request: Request, principal: Principal) -> Response:
    body = await json_body(request, ("url",))
    url = body.get("url")
    if not isinstance(url, str) or not url.strip() or len(url) > 2000 or any(
            c.isspace() for c in url.strip()):
        raise invalid("url: expected an https:// (or http://) URL")
    return ok(await run_in_threadpool(_set, app, principal, url.strip()))


async def delete_webhook(app: App, request: Request, principal: Principal) -> Response:
    await run_in_threadpool(_set, app, principal, None)
    return no_content()


def routes(app: App, gate: TokenGate) -> list[BaseRoute]:
    return [
        Route("/api/v1/webhook", operation(app, gate, "admin", get_webhook), methods=["GET"]),
        Route("/api/v1/webhook", operation(app, gate, "admin", put_webhook), methods=["PUT"]),
        Route("/api/v1/webhook", operation(app, gate, "admin", delete_webhook), methods=["DELETE"]),
    ]
