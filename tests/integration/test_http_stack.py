"""The HTTP listener (role http: Starlette on uvicorn, on the daemon's loop) over a real
socket: the limits of mailgw.http.protocol, the trusted proxies and the access log of
mailgw.http.middleware, and its end with the daemon (stop, SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from mailgw.app import App
from mailgw.errors import OperatorError
from tests.conftest import free_port, make_settings, wait_until

TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "tw-token", "api_url": "http://127.0.0.1:9",
          "from_number": "+33170709900", "public_url": "https://gw.example.org"}
PROXY, CLIENT, OTHER = "127.0.0.3", "127.0.0.4", "127.0.0.5"


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'http.db'}"


@pytest.fixture
def events() -> Iterator[list[Any]]:
    with structlog.testing.capture_logs() as entries:
        yield entries


def exchange(address: tuple[str, int], data: bytes, source: str = "127.0.0.1") -> bytes:
    """Send `data`, read the whole answer (the listener closes every connection)."""
    with socket.create_connection(address, timeout=30, source_address=(source, 0)) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def requests(entries: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [e for e in list(entries) if e.get("event") == "http_request"
            and str(e.get("path", "")).startswith(path)]


def test_bodies_are_bounded_by_their_route(make_app: Any) -> None:
    """Twilio's callbacks take 64 000 bytes: one more is refused before it is read, and
    a chunked body is counted as it comes."""
    app = make_app(dispatch={"driver": "twilio"}, drivers={"twilio": TWILIO},
                   http={"listen": "127.0.0.1:0"})
    address = app.app.http_address
    route = b"POST /callbacks/twilio/some-token/status HTTP/1.1\r\nHost: gw\r\n"
    over = exchange(address, route + b"Content-Length: 64001\r\n\r\n")  # no body sent
    assert status(over) == 413 and b"body over 64000 bytes" in over
    # Within the limit, the driver has the request (and refuses its missing signature).
    within = exchange(address, route + b"Content-Length: 3\r\n\r\nx=1")
    assert status(within) == 403, within
    chunk = b"x" * 40_000
    chunked = route + b"Transfer-Encoding: chunked\r\n\r\n" + (
        f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 2 + b"0\r\n\r\n"
    assert status(exchange(address, chunked)) == 413
    assert status(exchange(address, route + b"\r\n")) == 411  # neither length nor chunks
    # The media route takes no body: POST there is not a way around the limit.
    assert status(exchange(address, b"POST /media/twilio/t HTTP/1.1\r\nHost: gw\r\n"
                                    b"Content-Length: 1\r\n\r\nx")) == 405


def test_a_trickled_head_is_cut(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailgw.http.protocol.HEAD_TIMEOUT", 1.0)  # the cut, sooner
    app = make_app(http={"listen": "127.0.0.1:0"})
    address = app.app.http_address
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 100 + b"\r\n"
    with socket.create_connection(address, timeout=30) as conn:
        sent = 0
        for i in range(len(head)):  # a byte every 50 ms: the whole head would take 60 s
            if select.select([conn], [], [], 0.05)[0]:  # the client's pace; an answer?
                break
            conn.sendall(head[i:i + 1])
            sent += 1
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert sent < len(head)  # cut before the head was whole
    assert b"request head not received in time" in answer


def test_one_client_holds_only_its_share(make_app: Any) -> None:
    app = make_app(http={"listen": "127.0.0.1:0", "max_per_client": 2})
    address = app.app.http_address
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection(address, timeout=30, source_address=(CLIENT, 0))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            held.append(sock)
        refused = exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", CLIENT)
        assert status(refused) == 503 and b"\r\nRetry-After: 5\r\n" in refused
        assert status(exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                               OTHER)) == 200
    finally:
        for sock in held:
            sock.close()
    # Their connections closed, the client is served again.
    wait_until(lambda: status(exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                       CLIENT)) == 200, what="the client's share back")


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(
        make_app: Any, events: list[dict[str, Any]]) -> None:
    app = make_app(http={"listen": "127.0.0.1:0", "trusted_proxies": [f"{PROXY}/32"],
                         "max_per_client": 1})
    address = app.app.http_address
    forwarded = (b"GET /?via=proxy HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
                 b"X-Forwarded-Proto: https\r\n\r\n")
    assert status(exchange(address, forwarded, PROXY)) == 200
    assert status(exchange(address, forwarded.replace(b"proxy", b"client"), CLIENT)) == 200
    (trusted,) = wait_until(lambda: requests(events, "/?via=proxy"), what="the log line")
    assert trusted["client"] == "203.0.113.7" and trusted["via"] == PROXY
    (untrusted,) = wait_until(lambda: requests(events, "/?via=client"), what="the log line")
    assert untrusted["client"] == CLIENT and "via" not in untrusted
    # A proxy carries many clients: its connections count only against the total.
    held = []
    try:
        for _ in range(3):
            sock = socket.create_connection(address, timeout=30, source_address=(PROXY, 0))
            sock.sendall(b"GET / HTTP/1.1\r\n")
            held.append(sock)
        assert status(exchange(address, forwarded, PROXY)) == 200
    finally:
        for sock in held:
            sock.close()


def test_the_access_log_keeps_no_secret(make_app: Any, events: list[dict[str, Any]],
                                        caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(http={"listen": "127.0.0.1:0"})
    address = app.app.http_address
    request = (b"GET /http.php?login=alice&pass=secret1&p%61ssword=secret2;token=secret3"
               b" HTTP/1.1\r\nHost: x\r\nAuthorization: Basic c2VjcmV0NA==\r\n"
               b"Cookie: session=secret5\r\n\r\n")
    answer = exchange(address, request)
    assert status(answer) in (200, 400, 401, 403, 404)
    (line,) = wait_until(lambda: requests(events, "/http.php"), what="the log line")
    assert line["method"] == "GET" and line["status"] == status(answer)
    assert line["client"] == "127.0.0.1" and isinstance(line["duration_ms"], float)
    assert "login=alice" in line["path"] and "pass=***" in line["path"], line
    logged = repr(list(events)) + caplog.text
    for secret in ("secret", "c2VjcmV0NA"):
        assert secret not in logged, logged
    # A driver's callback token, in the path, is hidden the same way.
    exchange(address, b"POST /callbacks/nobody/secret6 HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 0\r\n\r\n")
    (line,) = wait_until(lambda: requests(events, "/callbacks/"), what="the log line")
    assert line["path"] == "/callbacks/nobody/***" and line["status"] == 404


def test_stop_closes_the_listener(make_app: Any) -> None:
    running = make_app(http={"listen": "127.0.0.1:0"})
    address = running.app.http_address
    assert status(exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    running.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()
    assert running.app.http_address is None


def test_sigterm_stops_the_daemon_and_its_listener(tmp_path: Path) -> None:
    """uvicorn takes no signal of the daemon's: SIGTERM runs mailgw's own clean stop."""
    port = free_port()
    env = {**os.environ, "MAILGW_CONFIG": "", "MAILGW_LOG__FORMAT": "json",
           "MAILGW_STORE__URL": f"sqlite:///{tmp_path / 'gw.db'}",
           "MAILGW_SMTP__LISTEN": "127.0.0.1:0", "MAILGW_HTTP__LISTEN": f"127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--roles",
                             "dispatch,http"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return bool(r.status == 200)
            except OSError:
                assert proc.poll() is None, "mailgw serve ended"
                return False

        wait_until(healthy, timeout=60, what="the HTTP listener")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        assert '"event": "stopped"' in stderr, stderr
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_role_http_needs_an_address(store_url: str, sink: Any) -> None:
    from mailgw.app import prepare_store

    settings = make_settings(store_url, sink.port)
    store = prepare_store(settings)

    async def start() -> None:
        app = App(settings, store, ("http",))
        try:
            await app.start()
        finally:
            await app.stop()

    try:
        with pytest.raises(OperatorError, match="http.listen"):
            asyncio.run(start())
    finally:
        store.dispose()
