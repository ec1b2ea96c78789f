"""The unit tier is pure: a test here that asks for a store, a listener or a sandbox belongs in
tests/integration. Collection fails when one does, so the tier stays fast."""

from __future__ import annotations

from typing import Any

import pytest

# Fixtures of tests/conftest.py that open a store, a socket or a child process.
NOT_UNIT = frozenset({"store_url", "pg_url", "sink", "make_app", "make_settings"})


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    for item in items:
        if "/unit/" not in str(item.path):
            continue
        used = NOT_UNIT & set(getattr(item, "fixturenames", ()))
        if used:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(used))}: move it to tests/integration")
