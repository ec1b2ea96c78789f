"""A client for /api/v1 tests: the app's ASGI face (mailgw.http.asgi.build) in process or
on a real socket (uvicorn on the app's loop), and real tokens."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from mailgw.accounts import tokens
from mailgw.http import asgi
from mailgw.store import Store
from tests.conftest import RunningApp, wait_until


class Tokens:
    """Issues real tokens (mailgw.accounts.tokens.issue), each with a name of its own."""

    def __init__(self) -> None:
        self.count = 0

    def issue(self, store: Store, email: str, *scopes: str) -> str:
        self.count += 1
        with store.tx() as s:
            return tokens.issue(s, email, f"test-{self.count}", scopes)[1]


@pytest.fixture
def api_tokens() -> Tokens:
    return Tokens()


# The gateway for API tests: no request rate per token and no slowing of wrong tokens
# unless a test asks for them (test_api_v1 checks both).
UNLIMITED: dict[str, dict[str, Any]] = {"http": {"token_rate": 0},
                                        "limits": {"auth_failures": 1000}}


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
