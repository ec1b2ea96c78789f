"""Sign-in, the second factor, log-out (here or everywhere) and the invitation link.

Wrong guesses are slowed as mail passwords are (mailgw.intake.guessing.Guard): a client
address or network that guessed wrong waits before its next try is even checked, and each
wrong answer is held for a delay that grows. Nothing locks an account: the owner, from an
address that did not guess, is checked at once, and a right password always opens.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import weblogin
from mailgw.http.web import sessions
from mailgw.http.web.pages import Web, local_path
from mailgw.store import web as rows


def routes(web: Web) -> list[BaseRoute]:
    async def login(request: Request) -> Response:
        me = await web.who(request)
        next_url = local_path(request.query_params.get("next"))
        if me is not None and not me.pending_totp:
            return web.redirect(next_url)
        ctx = {"next": next_url, "error": "", "done": request.query_params.get("done", ""),
               "email": ""}
        if request.method == "GET":
            return web.page(request, "login.html", None, ctx)
        form = await web.form(request, request.cookies.get(sessions.CSRF_COOKIE, ""))
        if form is None:
            return web.forbidden(request, None)
        email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
        next_url = local_path(str(form.get("next", "")))
        ctx |= {"next": next_url, "email": email, "done": ""}
        ip = web.client(request)
        await web.slow_down(request)
        if web.guard.suspect(ip) and not web.guard.take_check(email):
            return web.page(request, "login.html", None, ctx | {"error": "login_busy"},
                            status=429)

        def check(s: Session) -> tuple[str, bool] | None:
            account = weblogin.check_password(s, email, password)
            if account is None:
                return None
            on = weblogin.totp_on(s, account.id)
            return sessions.start(s, account, pending_totp=on), on

        started = await web.tx(check) if email and password else None
        if started is None:
            await web.hold_wrong(request, email or None)
            return web.page(request, "login.html", None, ctx | {"error": "login_failed"})
        token, pending = started
        response = web.redirect(f"/login/totp?next={next_url}" if pending else next_url)
        sessions.set_cookie(response, sessions.COOKIE, token, secure_flag=web.secure(request))
        return response

    async def totp(request: Request) -> Response:
        me = await web.who(request)
        if me is None:
            return web.redirect("/login")
        if not me.pending_totp:
            return web.redirect("/sent")
        next_url = local_path(request.query_params.get("next"))
        ctx = {"next": next_url, "error": ""}
        if request.method == "GET":
            return web.page(request, "totp.html", me, ctx, csrf=me.csrf)
        form = await web.form(request, me.csrf)
        if form is None:
            return web.forbidden(request, None)
        next_url = local_path(str(form.get("next", "")))
        await web.slow_down(request)
        code = str(form.get("code", ""))

        def verify(s: Session) -> bool:
            if not weblogin.second_factor(s, me.account_id, code):
                return False
            sessions.promote(s, me.session_id)
            return True

        right: bool = bool(code) and await web.tx(verify)
        if not right:
            await web.hold_wrong(request, me.email)
            return web.page(request, "totp.html", me, ctx | {"next": next_url,
                                                              "error": "totp_failed"},
                            csrf=me.csrf)
        return web.redirect(next_url)

    async def logout(request: Request) -> Response:
        me = await web.who(request)
        if me is None:
            return web.redirect("/login")
        if await web.form(request, me.csrf) is None:
            return web.forbidden(request, me)
        everywhere = request.url.path.endswith("/all")

        def end(s: Session) -> None:
            if everywhere:
                rows.end_sessions(s, me.account_id)
            else:
                rows.end_session(s, me.session_id)
        await web.tx(end)
        response = web.redirect("/login?done=all" if everywhere else "/login")
        sessions.clear_cookie(response, sessions.COOKIE, secure_flag=web.secure(request))
        return response

    async def invite(request: Request) -> Response:
        token = request.path_params["token"]
        account = await web.tx(lambda s: weblogin.invited(s, token))
        if account is None:
            return web.page(request, "invite.html", None, {"valid": False, "error": ""},
                            status=404)
        lang_ctx = {"valid": True, "error": "", "email": account.email}
        if request.method == "GET":
            return web.page(request, "invite.html", None, lang_ctx)
        form = await web.form(request, request.cookies.get(sessions.CSRF_COOKIE, ""))
        if form is None:
            return web.forbidden(request, None)
        password = str(form.get("password", ""))
        if password != str(form.get("confirm", "")):
            return web.page(request, "invite.html", None, lang_ctx | {"error": "mismatch"})
        try:
            await web.tx(lambda s: weblogin.set_from_invite(s, token, password))
        except weblogin.WebPasswordError as exc:
            return web.page(request, "invite.html", None, lang_ctx | {"error": exc.key})
        return web.redirect("/login?done=set")

    return [Route("/login", login, methods=["GET", "POST"]),
            Route("/login/totp", totp, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout/all", logout, methods=["POST"]),
            Route("/invite/{token}", invite, methods=["GET", "POST"])]
