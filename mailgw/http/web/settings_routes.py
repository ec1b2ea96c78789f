"""The account's Settings page: notices (all, failures or summary, the summary threshold,
the language), the webhook URL with its secret shown once, the fax defaults (quality, cover
page), the test number, and the allow-list of sender addresses.

Every change goes through the same rules as `mailgw account set` and the REST API
(mailgw.accounts.accounts.update_account, mailgw.accounts.notices); a refused value is said
in the account's language and nothing of that form is written."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import accounts, notices, senders
from mailgw.accounts.accounts import AccountError
from mailgw.documents.quality import NAMES as QUALITIES
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.store import web as rows
from mailgw.store.models import Account
from mailgw.vocab import LANGS

DONE = ("saved", "webhook_none")  # what ?done= may say
CODES = {"bad_test_number": 84}  # a refusal that is one of the mail's: its code is shown
URL_MAX = 2000


def _text(form: FormData, name: str, most: int = 320) -> str:
    value = form.get(name, "")
    return value.strip()[:most + 1] if isinstance(value, str) else ""


def routes(web: Web) -> list[BaseRoute]:
    def state(s: Session, me: Current) -> dict[str, Any]:
        a = rows.account_of(s, me.account_id)
        assert a is not None
        gateway = web.settings.notify
        return {"mode": a.notice_mode or "", "threshold": "" if a.summary_from is None
                else str(a.summary_from), "gateway_mode": gateway.on,
                "gateway_from": gateway.summary_from, "langs": LANGS, "account_lang": a.lang,
                "webhook_url": a.webhook_url or "", "qualities": QUALITIES,
                "quality": a.quality or "high", "cover": bool(a.cover),
                "test_number": a.test_number or "", "senders": senders.allowed(a),
                "own": a.email}

    async def show(request: Request, me: Current, extra: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
        ctx = await web.tx(lambda s: state(s, me))
        done = request.query_params.get("done", "")
        ctx |= {"message": done if done in DONE else "", "error": "", "section": "",
                "secret": "", "code": ""}
        return web.page(request, "settings.html", me, ctx | (extra or {}), status=status)

    async def page(request: Request, me: Current) -> Response:
        return await show(request, me)

    async def change(request: Request, me: Current, section: str, error: str,
                     work: Any) -> Response:
        """Run `work(session, account)`; an AccountError shows `error` and writes nothing."""
        def run(s: Session) -> None:
            account = rows.account_of(s, me.account_id)
            assert account is not None
            work(s, account)
        try:
            await web.tx(run)
        except AccountError:
            return await show(request, me, {"error": error, "section": section,
                                            "code": CODES.get(error, "")}, status=400)
        return web.redirect(f"/settings?done=saved#{section}")

    async def notice_form(request: Request, me: Current, form: FormData) -> Response:
        mode, threshold, lang = _text(form, "mode"), _text(form, "threshold"), _text(
            form, "lang")

        def work(s: Session, a: Account) -> None:
            if lang not in LANGS:
                raise AccountError(f"unsupported language {lang!r}")
            notices.set_notices(a, mode, threshold)
            a.lang = lang
        return await change(request, me, "notices", "bad_notices", work)

    async def webhook_form(request: Request, me: Current, form: FormData) -> Response:
        if form.get("action") == "remove":
            def off(s: Session, a: Account) -> None:
                accounts.update_account(s, a.email, webhook_url="none", webhook_secret="")
            await change(request, me, "webhook", "bad_webhook", off)
            return web.redirect("/settings?done=webhook_none#webhook")
        url = _text(form, "url", URL_MAX)
        secret = secrets.token_urlsafe(32)

        def work(s: Session, a: Account) -> None:
            if not url or len(url) > URL_MAX or any(c.isspace() for c in url):
                raise AccountError("the webhook URL is empty, too long or has a space")
            accounts.update_account(s, a.email, webhook_url=url, webhook_secret=secret)
        answer = await change(request, me, "webhook", "bad_webhook", work)
        if answer.status_code != 303:
            return answer
        # the secret is shown in this answer only (a reload shows it no more)
        return await show(request, me, {"secret": secret, "section": "webhook",
                                        "message": "saved"})

    async def fax_form(request: Request, me: Current, form: FormData) -> Response:
        quality, cover = _text(form, "quality"), "yes" if form.get("cover") else "no"
        return await change(request, me, "fax", "bad_value", lambda s, a: (
            accounts.update_account(s, a.email, quality=quality, cover=cover)))

    async def test_form(request: Request, me: Current, form: FormData) -> Response:
        number = _text(form, "number", 40) or "none"
        return await change(request, me, "test", "bad_test_number", lambda s, a: (
            accounts.update_account(s, a.email, test_number=number)))

    async def senders_form(request: Request, me: Current, form: FormData) -> Response:
        address = _text(form, "address")
        if form.get("action") == "remove":
            return await change(request, me, "senders", "bad_sender",
                                lambda s, a: senders.disallow(s, a, address))
        return await change(request, me, "senders", "bad_sender",
                            lambda s, a: accounts.allow_sender(s, a.email, address))

    return [Route("/settings", web.signed_in(page)),
            Route("/settings/notices", web.posted(notice_form), methods=["POST"]),
            Route("/settings/webhook", web.posted(webhook_form), methods=["POST"]),
            Route("/settings/fax", web.posted(fax_form), methods=["POST"]),
            Route("/settings/test-number", web.posted(test_form), methods=["POST"]),
            Route("/settings/senders", web.posted(senders_form), methods=["POST"])]
