"""schemathesis against /api/v1 from its own OpenAPI document, over a real socket: every
operation, with a valid token; no 500, status codes, content types, headers and bodies as
the document says. Bounded and deterministic (derandomized, a few examples each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mailgw.documents.samples import make_pdf
from mailgw.http.api_v1 import openapi
from tests.conftest import SENDER, RunningApp
from tests.integration.api_client import UNLIMITED, Tokens, api_tokens, bearer, served

__all__ = ["api_tokens"]  # the fixture, used by name
EXAMPLES = 20


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'schemathesis.db'}"


@pytest.fixture
def api(make_app: Any, api_tokens: Tokens) -> Iterator[tuple[str, str]]:
    """(base URL, an admin token) of a running gateway with one job in it."""
    gw: RunningApp = make_app(**UNLIMITED)
    gw.add_account()
    token = api_tokens.issue(gw.store, SENDER, "admin")
    with served(gw) as base:
        httpx.post(f"{base}/api/v1/jobs", headers=bearer(token),  # a job to find, cancel …
                   data={"channel": "fax", "numbers": "0170709901", "ref": "S"},
                   files={"documents": ("d.pdf", make_pdf([["x"]]), "application/pdf")})
        yield base, token


# The document the app serves, loaded without a server (pytest collects before any runs);
# test_served_document_is_this_one holds the served one to it.
schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case: Any, api: tuple[str, str]) -> None:
    # Data the document allows may still be refused by the gateway's rules (a number that is
    # not one, a fax with no document): that is a 4xx problem with its code, not a bug.
    base, token = api
    case.call_and_validate(base_url=base, headers=bearer(token),
                           excluded_checks=[positive_data_acceptance])


def test_served_document_is_this_one(api: tuple[str, str]) -> None:
    base, _ = api
    assert httpx.get(f"{base}/api/v1/openapi.json").json() == openapi.document()
