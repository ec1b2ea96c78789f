"""API tokens and the gateway password, on their own Settings page.

A token is made by mailgw.accounts.tokens as `mailgw token issue` makes it: shown in the
answer of its form only, kept as a hash. Revoking checks the token is the account's (another
account's is not found). The gateway password (the one in the Subject) is changed with the
new one typed twice, in a signed-in session, with the rules of `mailgw account passwd`
(argon2 at rest); it is never written back into a page."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import accounts, tokens
from mailgw.accounts.accounts import AccountError
from mailgw.accounts.passwords import verify_password
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.notify.words import local_time
from mailgw.store import web as rows

DONE = ("gw_changed", "revoked")


def routes(web: Web) -> list[BaseRoute]:
    def state(s: Session, me: Current) -> dict[str, Any]:
        listed = []
        for view in tokens.list_tokens(s, me.email):
            listed.append({"id": view.id, "name": view.name, "prefix": view.prefix,
                           "scopes": view.scopes, "state": view.state(),
                           "created": local_time(view.created_at, me.tz, me.lang),
                           "used": local_time(view.last_used_at, me.tz, me.lang)})
        return {"tokens": listed, "scope_names": tokens.SCOPES}

    async def show(request: Request, me: Current, extra: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
        ctx = await web.tx(lambda s: state(s, me))
        done = request.query_params.get("done", "")
        ctx |= {"message": done if done in DONE else "", "error": "", "token": "",
                "section": "", "name": ""}
        return web.page(request, "access.html", me, ctx | (extra or {}), status=status)

    async def page(request: Request, me: Current) -> Response:
        return await show(request, me)

    async def create(request: Request, me: Current, form: FormData) -> Response:
        name = str(form.get("name", ""))[:200]
        scopes = [str(v) for v in form.getlist("scope")][:len(tokens.SCOPES)]
        try:
            _id, token = await web.tx(lambda s: tokens.issue(s, me.email, name, scopes))
        except AccountError:
            return await show(request, me, {"error": "bad_token", "section": "tokens",
                                            "name": name.strip()}, status=400)
        # the token is shown in this answer only (a reload shows it no more)
        return await show(request, me, {"token": token, "section": "tokens"})

    async def revoke(request: Request, me: Current, _form: FormData) -> Response:
        token_id = request.path_params["token_id"]

        def run(s: Session) -> bool:
            if token_id not in {v.id for v in tokens.list_tokens(s, me.email)}:
                return False
            tokens.revoke(s, token_id)
            return True
        if not await web.tx(run):
            return web.not_found(request, me)
        return web.redirect("/settings/access?done=revoked#tokens")

    async def password(request: Request, me: Current, form: FormData) -> Response:
        new, again = str(form.get("password", "")), str(form.get("confirm", ""))
        if new != again:
            return await show(request, me, {"error": "mismatch", "section": "gateway"},
                              status=400)

        def run(s: Session) -> str:
            try:
                accounts.check_password_rules(new)
            except AccountError:
                return "gw_rules"
            login = rows.login(s, me.account_id)
            if login is not None and login.password_hash and verify_password(
                    login.password_hash, new):
                return "gw_same_as_web"
            accounts.set_password(s, me.email, new)
            return ""
        error = await web.tx(run)
        if error:
            return await show(request, me, {"error": error, "section": "gateway"},
                              status=400)
        return web.redirect("/settings/access?done=gw_changed#gateway")

    return [Route("/settings/access", web.signed_in(page)),
            Route("/settings/tokens", web.posted(create), methods=["POST"]),
            Route("/settings/tokens/{token_id:int}/revoke", web.posted(revoke),
                  methods=["POST"]),
            Route("/settings/password", web.posted(password), methods=["POST"])]
