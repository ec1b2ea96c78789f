"""The web space (issue 19): server-rendered pages for senders, on the HTTP face.

Sign-in with a web password (invitation link, optional TOTP), the Sent list, one job's
page (with its fax pages as pictures, or its sound), the security page, Settings (with
API tokens and the gateway password), contact groups and the voice library; for
operators the admin pages (accounts, queue, dead outbox mails, audit). Jinja2 templates
and one stylesheet; no script, no CDN. Every answer carries the security headers
(pages.HEADERS); every form a CSRF token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.http.web import (
    access_routes,
    admin_ops_routes,
    admin_routes,
    auth_routes,
    contacts_routes,
    job_routes,
    library_routes,
    media_routes,
    security_routes,
    sent_routes,
    settings_routes,
)
from mailgw.http.web.pages import Web, secured

if TYPE_CHECKING:
    from mailgw.app import App


def routes(app: App) -> list[BaseRoute]:
    web = Web(app)

    async def css(_request: Request) -> Response:
        response = secured(Response(web.css, media_type="text/css; charset=utf-8"))
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    async def home(request: Request) -> Response:
        return web.redirect("/sent")

    return [Route("/", home), Route("/static/web.css", css),
            *auth_routes.routes(web), *sent_routes.routes(web), *job_routes.routes(web),
            *security_routes.routes(web), *media_routes.routes(web),
            *admin_routes.routes(web, app.wake), *admin_ops_routes.routes(web, app.wake),
            *settings_routes.routes(web), *access_routes.routes(web),
            *contacts_routes.routes(web), *library_routes.routes(web)]
