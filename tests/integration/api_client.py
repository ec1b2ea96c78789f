"""A client for /api/v1 tests: the app's ASGI face (mailgw.http.asgi.build) and tokens.

Tokens come from the tokens module's `verify`; until it issues real ones, `Tokens` stands
in for its store with the same signature (secret → Principal), so the tests speak the
interface the API relies on.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from mailgw.accounts import tokens
from mailgw.accounts.tokens import Principal
from mailgw.http import asgi
from mailgw.store import Store
from mailgw.store.models import Account
from tests.conftest import RunningApp, wait_until


class Tokens:
    """secret → Principal, as tokens.verify answers."""

    def __init__(self) -> None:
        self.known: dict[str, Principal] = {}

    def verify(self, store: Store, presented: str) -> Principal | None:
        return self.known.get(presented)

    def issue(self, store: Store, email: str, *scopes: str) -> str:
        with store.read() as s:
            account = s.query(Account).filter(Account.email == email).one()
            account_id = account.id
        secret = secrets.token_urlsafe(24)
        self.known[secret] = Principal(len(self.known) + 1, "test", account_id, email,
                                       frozenset(scopes))
        return secret


@pytest.fixture
def api_tokens(monkeypatch: pytest.MonkeyPatch) -> Tokens:
    found = Tokens()
    monkeypatch.setattr(tokens, "verify", found.verify, raising=False)
    return found


@contextmanager
def served(running: RunningApp) -> Iterator[str]:
    """The app's ASGI face on a real socket (uvicorn on the app's own loop, as `serve` runs
    it); yields the base URL."""
    assert running.app is not None
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(asgi.build(running.app), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    done = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), running.loop)
    wait_until(lambda: server.started or done.done(), what="the HTTP listener")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        done.result(30)
        sock.close()


def client_for(running: RunningApp) -> Iterator[TestClient]:
    assert running.app is not None
    with TestClient(asgi.build(running.app), base_url="http://testserver") as client:
        yield client


def bearer(secret: str, **extra: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {secret}", **extra}
