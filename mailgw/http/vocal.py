"""123-Vocal's /http.php: GET or POST, the code 80–91 first, then its sentence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailgw.app import App


def routes(app: App) -> list[BaseRoute]:
    return []
