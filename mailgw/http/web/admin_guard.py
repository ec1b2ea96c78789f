"""Who may see the admin pages: a signed-in operator (`account.admin`), read from the store
on every request, so taking the flag away takes the pages away at once. Anyone else gets
404, as for a page that does not exist: a sender is not told there are admin pages. A form
is checked for its CSRF token only after that (a non-operator gets 404, never 403)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from mailgw.accounts.operators import Operator
from mailgw.http.web.pages import Handler, Web
from mailgw.http.web.sessions import Current


def operator(me: Current) -> Operator:
    return Operator(me.email, me.account_id)


def page(web: Web, handler: Callable[[Request, Current], Awaitable[Response]]) -> Handler:
    async def endpoint(request: Request) -> Response:
        me = await web.who(request)
        if me is None or me.pending_totp:
            return web.to_login(request)
        if not me.admin:
            return web.not_found(request, me)
        return await handler(request, me)
    return endpoint


def form(web: Web, handler: Callable[[Request, Current, FormData], Awaitable[Response]]
         ) -> Handler:
    async def endpoint(request: Request) -> Response:
        me = await web.who(request)
        if me is None or me.pending_totp:
            return web.forbidden(request, None)
        if not me.admin:
            return web.not_found(request, me)
        posted = await web.form(request, me.csrf)
        if posted is None:
            return web.forbidden(request, me)
        return await handler(request, me, posted)
    return endpoint
