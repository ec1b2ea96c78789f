"""The HTTP face as one Starlette application: each part of it gives its own routes.

ops_routes: /metrics, /healthz; provider_routes: the drivers' callbacks and media URLs;
vocal: 123-Vocal's /http.php; api_v1: the REST API under /api/v1. None of them writes a
job itself: they hand requests to intake and the jobs service, as mail does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette

from mailgw.http import api_v1, ops_routes, provider_routes, vocal
from mailgw.http import web as web_space

if TYPE_CHECKING:
    from mailgw.app import App
    from mailgw.dispatch.drivers.base import Driver


def build(app: App, callbacks: dict[str, Driver] | None = None) -> Starlette:
    """The ASGI application for one App (its store, settings, intake and jobs)."""
    routes = [*ops_routes.routes(app), *provider_routes.routes(callbacks or {}),
              *vocal.routes(app), *api_v1.routes(app)]
    routes += web_space.routes(app)  # the web space (issue 19): /login, /sent, /jobs/<id>
    return Starlette(routes=routes)
