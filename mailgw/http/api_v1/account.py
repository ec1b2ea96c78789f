"""/api/v1/account: the token's account (credits, settings, test number), read with
jobs:read and changed with admin, through the same rules as `mailgw account set`
(mailgw.accounts.accounts.update_account). Credits are the operator's to give: read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import accounts
from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.http.api_v1.common import invalid, json_body, not_found, ok, operation
from mailgw.store import api_v1 as rows
from mailgw.store.models import Account

if TYPE_CHECKING:
    from mailgw.app import App

# PATCH fields: (kind, the update_account keyword); None clears the nullable ones.
TEXT = {"lang": "lang", "tz": "tz", "region": "region", "quality": "quality"}
NULLABLE = {"test_number": "test_number", "notice_address": "notice_address",
            "send_window": "window"}
FLAGS = {"cover": "cover", "header_line": "header_line"}


def account_dict(a: Account) -> dict[str, Any]:
    return {"id": a.id, "email": a.email, "credits": a.credits, "region": a.region,
            "lang": a.lang, "tz": a.tz, "quality": a.quality or "high", "cover": bool(a.cover),
            "header_line": bool(a.header_line), "test_number": a.test_number,
            "notice_address": a.notice_address, "send_window": a.send_window,
            "senders": sorted(s.address for s in a.senders)}


def _get(app: App, principal: Principal) -> dict[str, Any]:
    with app.store.read() as s:
        account = rows.account(s, principal.account_id)
        if account is None:
            raise not_found("account")
        return account_dict(account)


async def get_account(app: App, request: Request, principal: Principal) -> Response:
    return ok(await run_in_threadpool(_get, app, principal))


def changes(body: dict[str, Any]) -> dict[str, str]:
    """The PATCH body as update_account's keywords (its strings: 'none' clears)."""
    out: dict[str, str] = {}
    for name, value in body.items():
        if name in TEXT:
            if not isinstance(value, str) or not value.strip() or len(value) > 100:
                raise invalid(f"{name}: expected a non-empty string")
            out[TEXT[name]] = value.strip()
        elif name in NULLABLE:
            if value is not None and (not isinstance(value, str) or len(value) > 320):
                raise invalid(f"{name}: expected a string or null")
            out[NULLABLE[name]] = "none" if value is None or not value.strip() else value
        elif name in FLAGS:
            if not isinstance(value, bool):
                raise invalid(f"{name}: expected true or false")
            out[FLAGS[name]] = "yes" if value else "no"
        else:
            raise invalid(f"{name}: not a setting the API changes")
    return out


def _patch(app: App, principal: Principal, wanted: dict[str, str]) -> dict[str, Any]:
    with app.store.tx() as s:
        account = rows.account(s, principal.account_id)
        if account is None:
            raise not_found("account")
        try:
            accounts.update_account(s, account.email, **wanted)
        except accounts.AccountError as exc:
            raise invalid(str(exc)) from None
        return account_dict(account)


async def patch_account(app: App, request: Request, principal: Principal) -> Response:
    wanted = changes(await json_body(request, (*TEXT, *NULLABLE, *FLAGS)))
    return ok(await run_in_threadpool(_patch, app, principal, wanted))


def routes(app: App, gate: TokenGate) -> list[BaseRoute]:
    return [
        Route("/api/v1/account", operation(app, gate, "jobs:read", get_account), methods=["GET"]),
        Route("/api/v1/account", operation(app, gate, "admin", patch_account), methods=["PATCH"]),
    ]
