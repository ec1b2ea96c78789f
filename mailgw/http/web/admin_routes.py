"""The operators' Accounts pages: every account with its credits, status and web password;
create one, send its invitation, change its credits and limits (sending window, retry
policy), disable or enable it. Each change is journaled (mailgw.accounts.operators)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import operators
from mailgw.accounts.accounts import AccountError
from mailgw.http.web import admin_guard, i18n, refusals
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.notify.invite import send_invite
from mailgw.notify.words import local_time
from mailgw.store import admin as rows
from mailgw.store.models import Account
from mailgw.vocab import LANGS

DONE = ("created", "invited", "credits", "limits", "disabled", "enabled")


def account_view(a: Account, web_set: bool, me: Current) -> dict[str, Any]:
    return {"id": a.id, "email": a.email, "region": a.region, "lang": a.lang, "tz": a.tz,
            "credits": a.credits, "window": a.send_window or "",
            "retry": operators.retry_text(a), "admin": bool(a.admin),
            "disabled": bool(a.disabled), "web_set": web_set,
            "created": local_time(a.created_at, me.tz, me.lang)}


def done_message(request: Request, t: dict[str, str]) -> str:
    done = request.query_params.get("done", "")
    return t[f"done_{done}"] if done in DONE else ""


def refused(t: dict[str, str], error: str, me: Current) -> str:
    """The translated prefix and the reason, translated when of a known kind."""
    return t["adm_refused"].format(why=refusals.explain(error, me.lang)) if error else ""


def routes(web: Web, wake: Callable[[], None]) -> list[BaseRoute]:
    settings = web.settings.accounts

    async def listing(request: Request, me: Current, error: str = "",
                      values: dict[str, str] | None = None, status: int = 200) -> Response:
        t = i18n.words(me.lang)

        def read(s: Session) -> list[dict[str, Any]]:
            return [account_view(a, w, me) for a, w in rows.accounts(s)]
        shown = await web.tx(read)
        defaults = {"email": "", "region": settings.default_region,
                    "lang": settings.default_lang, "tz": settings.default_tz,
                    "credits": "" if settings.default_credits is None
                    else str(settings.default_credits)}
        return web.page(request, "admin_accounts.html", me, {
            "accounts": shown, "langs": LANGS, "values": defaults | (values or {}),
            "message": done_message(request, t),
            "error": refused(t, error, me)}, status=status)

    async def index(request: Request, me: Current) -> Response:
        return await listing(request, me)

    async def create(request: Request, me: Current, form: FormData) -> Response:
        values = {k: str(form.get(k, "")).strip() for k in
                  ("email", "region", "lang", "tz", "credits")}
        password = str(form.get("password", ""))
        credits_text = values["credits"]
        try:
            credits = None if credits_text.lower() in ("", "unlimited") else int(credits_text)
        except ValueError:
            return await listing(request, me, f"credits: {credits_text!r}", values, 400)

        def make(s: Session) -> int:
            return operators.create(s, admin_guard.operator(me), values["email"], password,
                                    region=values["region"], lang=values["lang"],
                                    tz=values["tz"], credits=credits).id
        try:
            new_id = await web.tx(make)
        except AccountError as exc:
            return await listing(request, me, str(exc), values, 400)
        return web.redirect(f"/admin/accounts/{new_id}?done=created")

    async def show(request: Request, me: Current, error: str = "",
                   status: int = 200) -> Response:
        t = i18n.words(me.lang)
        account_id = request.path_params["account_id"]

        def read(s: Session) -> dict[str, Any] | None:
            found = rows.account(s, account_id)
            if found is None:
                return None
            return account_view(found, rows.web_password_set(s, account_id), me)
        view = await web.tx(read)
        if view is None:
            return web.not_found(request, me)
        return web.page(request, "admin_account.html", me, {
            "a": view, "message": "" if error else done_message(request, t),
            "error": refused(t, error, me)}, status=status)

    async def detail(request: Request, me: Current) -> Response:
        return await show(request, me)

    def action(work: Callable[[Session, operators.Operator, int, FormData], object],
               done: str | Callable[[FormData], str], *, send: bool = False
               ) -> Callable[[Request, Current, FormData], Any]:
        """A form on one account: `work` in one transaction, then back to its page."""
        async def endpoint(request: Request, me: Current, form: FormData) -> Response:
            account_id = request.path_params["account_id"]
            if await web.tx(lambda s: rows.account(s, account_id)) is None:
                return web.not_found(request, me)
            try:
                await web.tx(lambda s: work(s, admin_guard.operator(me), account_id, form))
            except AccountError as exc:
                return await show(request, me, str(exc), 400)
            if send:
                wake()  # the outbox sends the invitation now rather than at its next poll
            word = done if isinstance(done, str) else done(form)
            return web.redirect(f"/admin/accounts/{account_id}?done={word}")
        return endpoint

    def invite(s: Session, who: operators.Operator, account_id: int, _form: FormData) -> None:
        account = rows.account(s, account_id)
        assert account is not None
        to = send_invite(s, web.settings, account.email)
        operators.invited(s, who, account_id, to)

    def credits(s: Session, who: operators.Operator, account_id: int, form: FormData) -> None:
        operators.change_credits(s, who, account_id, str(form.get("credits", "")))

    def limits(s: Session, who: operators.Operator, account_id: int, form: FormData) -> None:
        operators.change_limits(s, who, account_id, window=str(form.get("window", "")),
                                retry=str(form.get("retry", "")))

    def status(s: Session, who: operators.Operator, account_id: int, form: FormData) -> None:
        operators.set_disabled(s, who, account_id, form.get("disabled") == "yes")

    def status_word(form: FormData) -> str:
        return "disabled" if form.get("disabled") == "yes" else "enabled"

    posted = [("invite", action(invite, "invited", send=True)),
              ("credits", action(credits, "credits")), ("limits", action(limits, "limits")),
              ("status", action(status, status_word))]
    return [Route("/admin", admin_guard.page(web, index)),
            Route("/admin/accounts", admin_guard.page(web, index)),
            Route("/admin/accounts", admin_guard.form(web, create), methods=["POST"]),
            Route("/admin/accounts/{account_id:int}", admin_guard.page(web, detail)),
            *[Route(f"/admin/accounts/{{account_id:int}}/{name}",
                    admin_guard.form(web, handler), methods=["POST"])
              for name, handler in posted]]
