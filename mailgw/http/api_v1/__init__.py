"""The REST API under /api/v1 (JSON, OpenAPI 3.1 at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailgw.app import App


def routes(app: App) -> list[BaseRoute]:
    return []
