"""What every page of the web space shares: the App's store, settings and jobs service,
the Jinja2 templates (one set; the words come from i18n), the security headers, the
signed-in check and the CSRF check of forms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mailgw.codes import sentence
from mailgw.http.web import i18n, sessions
from mailgw.intake.guessing import Guard, GuessPolicy
from mailgw.jobs.service import Jobs
from mailgw.notify.render import renderer_for

if TYPE_CHECKING:
    from mailgw.app import App

HERE = Path(__file__).parent
# No inline script or style anywhere: the pages use /static/web.css and plain forms; the
# library's <audio> plays the account's own sounds from this site.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
           "Cross-Origin-Opener-Policy": "same-origin", "Cache-Control": "no-store"}
MAX_DELAY = 30.0  # seconds a wrong guess's answer is held at most
MAX_FORM = 64 * 1024  # bytes: the web space's forms are small

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


async def hold(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(min(seconds, MAX_DELAY))


def secured(response: Response) -> Response:
    """The security headers, on every answer of the web space."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def local_path(target: str | None) -> str:
    """Where to go after sign-in: a path of this site only (no `//host`, no scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/sent"
    return target


class Web:
    """The web space of one App."""

    def __init__(self, app: App):
        self.app = app
        self.store = app.store
        self.settings = app.settings
        self.jobs = Jobs(app.store, app.settings, renderer_for(app.settings))
        self.guard = Guard(GuessPolicy.of(app.settings.limits))
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(["html"]),
                               undefined=StrictUndefined)
        self.css = (HERE / "static" / "web.css").read_bytes()

    # -- who is asking ----------------------------------------------------------------------

    def secure(self, request: Request) -> bool:
        return sessions.secure(request, self.settings.notify.base_url)

    async def who(self, request: Request) -> sessions.Current | None:
        token = request.cookies.get(sessions.COOKIE)
        if not token:
            return None
        return await self.tx(lambda s: sessions.current(s, token))

    async def tx(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction, in a worker thread."""
        def run() -> T:
            with self.store.tx() as s:
                return work(s)
        return await run_in_threadpool(run)

    @staticmethod
    def lang(request: Request, current: sessions.Current | None) -> str:
        if current is not None and current.lang in i18n.WORDS:
            return current.lang
        return i18n.from_header(request.headers.get("accept-language"))

    # -- answers ----------------------------------------------------------------------------

    def page(self, request: Request, template: str, current: sessions.Current | None,
             ctx: dict[str, Any] | None = None, *, status: int = 200,
             csrf: str | None = None) -> Response:
        lang = self.lang(request, current)
        new_cookie = False
        if csrf is None and current is not None and not current.pending_totp:
            csrf = current.csrf
        if csrf is None:
            csrf, new_cookie = sessions.anonymous_csrf(request)
        body = self.env.get_template(template).render(
            t=i18n.words(lang), lang=lang, me=current, csrf=csrf, **(ctx or {}))
        response = HTMLResponse(body, status_code=status)
        if new_cookie:
            sessions.set_cookie(response, sessions.CSRF_COOKIE, csrf,
                                secure_flag=self.secure(request))
        return secured(response)

    def redirect(self, to: str) -> Response:
        return secured(RedirectResponse(to, status_code=303))

    def not_found(self, request: Request, current: sessions.Current | None) -> Response:
        return self.page(request, "error.html", current,
                         {"title": i18n.words(self.lang(request, current))["not_found"]},
                         status=404)

    def forbidden(self, request: Request, current: sessions.Current | None) -> Response:
        t = i18n.words(self.lang(request, current))
        return self.page(request, "error.html", current,
                         {"title": t["forbidden"]}, status=403)

    def to_login(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return self.redirect(f"/login?next={quote(target, safe='')}")

    # -- guessing (mailgw.intake.guessing: slowed, never locked) -----------------------------

    @staticmethod
    def client(request: Request) -> str | None:
        return request.client.host if request.client else None

    async def slow_down(self, request: Request) -> None:
        """Before a password or code is checked: the wait the client address (and its
        network) earned by wrong guesses; another client of the same account waits nothing."""
        await hold(self.guard.client_delay(self.client(request)))

    async def hold_wrong(self, request: Request, account: str | None) -> None:
        """A wrong password or code: counted, and the answer held for the growing delay."""
        await hold(self.guard.failed(account, self.client(request)))

    # -- checks -----------------------------------------------------------------------------

    async def form(self, request: Request, expected: str) -> FormData | None:
        """The posted form, only when its CSRF token is the one expected (else None)."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM:
            return None
        form = await request.form(max_files=0, max_fields=50)
        return form if sessions.same(form.get("csrf"), expected) else None

    async def upload(self, request: Request, expected: str) -> FormData | None:
        """A posted multipart form with one file (a contact list, a sound): None when its
        CSRF token is not the one expected, or it is not a form that can be read. Its size
        is checked by the caller (413 with code 94 above smtp.max_message_size)."""
        try:
            form = await request.form(max_files=1, max_fields=10, max_part_size=10_000)
        except (MultiPartException, HTTPException):
            return None
        if not sessions.same(form.get("csrf"), expected):
            await form.close()
            return None
        return form

    def too_big(self, request: Request) -> bool:
        most = self.settings.smtp.max_message_size
        return int(request.headers.get("content-length") or 0) > most

    def signed_in(self, handler: Callable[[Request, sessions.Current], Awaitable[Response]]
                  ) -> Handler:
        """A page for a signed-in account (the second factor passed): else to sign-in,
        and back here after it."""
        async def endpoint(request: Request) -> Response:
            me = await self.who(request)
            if me is None or me.pending_totp:
                return self.to_login(request)
            return await handler(request, me)
        return endpoint

    def posted(self, handler: Callable[[Request, sessions.Current, FormData],
                                       Awaitable[Response]], *, files: bool = False
               ) -> Handler:
        """A form of a signed-in account: its CSRF token checked first (403 without it).
        With `files`, a multipart form with one file, at most smtp.max_message_size."""
        async def endpoint(request: Request) -> Response:
            me = await self.who(request)
            if me is None or me.pending_totp:
                return self.forbidden(request, None) if request.method == "POST" else (
                    self.to_login(request))
            if files and self.too_big(request):
                title = f"[94] {sentence(94, self.lang(request, me))}"
                return self.page(request, "error.html", me, {"title": title}, status=413)
            form = await (self.upload(request, me.csrf) if files
                          else self.form(request, me.csrf))
            if form is None:
                return self.forbidden(request, me)
            return await handler(request, me, form)
        return endpoint
