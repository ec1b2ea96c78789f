"""GET /metrics (Prometheus) and GET /healthz."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailgw.app import App


def routes(app: App) -> list[BaseRoute]:
    return []  # moved here from mailgw.http.api by the stack's change
