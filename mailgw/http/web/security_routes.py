"""The account's security page: the second factor (TOTP, with recovery codes shown once)
and log out everywhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import weblogin
from mailgw.accounts.accounts import AccountError
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.store import web as rows


def routes(web: Web) -> list[BaseRoute]:
    def state(s: Session, me: Current) -> dict[str, Any]:
        account = rows.account_of(s, me.account_id)
        assert account is not None
        pending = weblogin.pending_secret(s, account)
        return {"totp_on": weblogin.totp_on(s, me.account_id),
                "left": weblogin.recovery_left(s, me.account_id),
                "secret": pending[0] if pending else "", "uri": pending[1] if pending else ""}

    async def show(request: Request, me: Current, extra: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
        ctx = await web.tx(lambda s: state(s, me))
        ctx |= {"codes": [], "error": "", "message": request.query_params.get("done", "")}
        return web.page(request, "security.html", me, ctx | (extra or {}), status=status)

    async def page(request: Request, me: Current) -> Response:
        return await show(request, me)

    async def totp(request: Request, me: Current, form: FormData) -> Response:
        action = form.get("action")
        code = str(form.get("code", ""))
        if action == "start":
            def begin(s: Session) -> None:
                account = rows.account_of(s, me.account_id)
                assert account is not None
                try:
                    weblogin.start_totp(s, account)
                except AccountError:
                    pass  # already on: the page says so
            await web.tx(begin)
            return web.redirect("/security")
        if action == "confirm":
            try:
                codes = await web.tx(lambda s: weblogin.confirm_totp(s, me.account_id, code))
            except AccountError:
                return await show(request, me, {"error": "totp_failed"}, status=400)
            return await show(request, me, {"codes": codes, "message": "totp_now_on"})
        if action == "disable":
            def off(s: Session) -> bool:
                if not weblogin.second_factor(s, me.account_id, code):
                    return False
                weblogin.disable_totp(s, me.account_id)
                return True
            if not await web.tx(off):
                await web.hold_wrong(request, me.email)
                return await show(request, me, {"error": "totp_failed"}, status=400)
            return web.redirect("/security?done=totp_now_off")
        return web.redirect("/security")

    return [Route("/security", web.signed_in(page)),
            Route("/security/totp", web.posted(totp), methods=["POST"])]
