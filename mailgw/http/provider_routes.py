"""The drivers' routes: POST /callbacks/<driver>/<rest>, GET /media/<driver>/<token>."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

if TYPE_CHECKING:
    from mailgw.dispatch.drivers.base import Driver


def routes(callbacks: dict[str, Driver]) -> list[BaseRoute]:
    return []  # moved here from mailgw.http.api by the stack's change
