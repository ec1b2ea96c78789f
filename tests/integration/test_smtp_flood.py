"""Floods of connections over real sockets on loopback (127.0.0.1 floods, 127.0.0.2 is the
normal client: Linux routes all of 127/8 to lo): per-client caps, stress-adaptive
timeouts for idle and trickling sessions, DATA slots, and the HTTP listener."""

from __future__ import annotations

import http.client
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from mailgw.documents.samples import make_pdf
from mailgw.smtp.flood import PER_CLIENT, RATE
from mailgw.smtp.server import TOO_MANY_CONNECTIONS
from tests.conftest import PASSWORD, SENDER, fax_message, wait_until
from tests.integration.test_end_to_end import crlf

FLOODER, OTHER = "127.0.0.1", "127.0.0.2"
KINDS = ("silent", "partial", "ehlo", "noop", "data_bytes", "data_lines")
PDF = make_pdf([["flood test"]])


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'flood.db'}"


def connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))


def talk(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    return read_reply(sock)


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.rsplit(b"\r\n", 2)[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def send_mail(port: int, source: str) -> str | None:
    """A normal client: a real fax mail over smtplib; its DATA reply, None when refused."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
            c.ehlo("client.example.com")
            c.mail(SENDER)
            c.rcpt("fax@gw.example.org")
            code, text = c.data(crlf(fax_message(f"{PASSWORD}:0170709901", PDF).as_bytes()))
            return f"{code} {text.decode()}"
    except (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected):
        return None  # 421 at connect: not served yet


class Flood:
    """Idle and trickling sessions from one address; a thread keeps the tricklers going."""

    def __init__(self, port: int, source: str = FLOODER, pace: float = 0.3,
                 kinds: tuple[str, ...] = KINDS):
        self.port, self.source, self.pace, self.kinds = port, source, pace, kinds
        self.socks: list[socket.socket] = []
        self.held: list[tuple[socket.socket, str]] = []
        self.refused: list[bytes] = []
        self.unfinished = 0  # sessions cut before they were set up (a slow machine)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def connect(self, n: int) -> Flood:
        """The TCP connections first, all at once (the listener fills before any is cut)."""
        self.socks = [connect(self.port, self.source) for _ in range(n)]
        return self

    def set_up(self) -> Flood:
        """Each admitted session into its kind, then the tricklers start."""
        for sock in self.socks:
            greeting = read_reply(sock)
            if not greeting.startswith(b"220"):
                self.refused.append(greeting)
                sock.close()
                continue
            kind = self.kinds[len(self.held) % len(self.kinds)]
            self.held.append((sock, kind))
            try:
                self._set_up(sock, kind)
            except (OSError, AssertionError):
                self.unfinished += 1
        self.thread.start()
        return self

    @staticmethod
    def _set_up(sock: socket.socket, kind: str) -> None:
        if kind == "partial":
            sock.sendall(b"EHL")  # a command that never ends
        elif kind != "silent":
            assert talk(sock, b"EHLO flood.example\r\n").startswith(b"250")
        if kind.startswith("data"):
            for line in (f"MAIL FROM:<{SENDER}>\r\n".encode(),
                         b"RCPT TO:<fax@gw.example.org>\r\n"):
                assert talk(sock, line).startswith(b"250")
            assert talk(sock, b"DATA\r\n").startswith(b"354")

    def _trickle(self) -> None:
        sends = {"noop": b"NOOP\r\n", "data_bytes": b"x", "data_lines": b"x\r\n"}
        while not self.stop.wait(self.pace):  # the tricklers' pace, not a synchronisation
            for sock, kind in self.held:
                if kind in sends:
                    try:
                        sock.sendall(sends[kind])
                    except OSError:
                        pass  # cut by the server

    def wait_cut(self, timeout: float) -> None:
        """Every held session closed by the server within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        for sock, kind in self.held:
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                try:
                    if not sock.recv(65536):
                        break
                except ConnectionResetError:
                    break
                except TimeoutError:
                    raise AssertionError(f"a {kind!r} session still open after {timeout} s"
                                         ) from None

    def close(self) -> None:
        self.stop.set()
        for sock, _ in self.held:
            sock.close()


def served(port: int, source: str) -> bool:
    reply = send_mail(port, source)
    return reply is not None and reply.startswith("250")


def test_per_client_cap(make_app) -> None:
    app = make_app(smtp={"max_connections_per_client": 3, "max_connection_rate": 0})
    held = [connect(app.port, FLOODER) for _ in range(3)]
    try:
        assert all(read_reply(s).startswith(b"220") for s in held)
        with connect(app.port, FLOODER) as sock:
            assert read_reply(sock) == PER_CLIENT
        with connect(app.port, OTHER) as sock:  # another address is not concerned
            assert read_reply(sock).startswith(b"220")
        held.pop().close()
        wait_until(lambda: read_reply(connect(app.port, FLOODER)).startswith(b"220"), 10,
                   "a free slot for 127.0.0.1 once one of its sessions is gone")
    finally:
        for s in held:
            s.close()


def test_connection_rate_cap(make_app) -> None:
    app = make_app(smtp={"max_connection_rate": 5})
    for _ in range(5):
        with connect(app.port, FLOODER) as sock:
            assert read_reply(sock).startswith(b"220")
            assert talk(sock, b"QUIT\r\n").startswith(b"221")
    with connect(app.port, FLOODER) as sock:
        assert read_reply(sock) == RATE
    with connect(app.port, OTHER) as sock:
        assert read_reply(sock).startswith(b"220")


def test_flood_from_one_address_at_the_defaults(make_app) -> None:
    """The issue's test with every default: 200 idle or trickling connections from
    127.0.0.1 hold 20 sessions (the rest get 421 4.7.0); 127.0.0.2 is served at once; the
    flooder's sessions, at its own limit, are cut after stress_timeout (10 s), and then a
    normal client from 127.0.0.1 is served too."""
    app = make_app()
    app.add_account()
    started = time.monotonic()
    flood = Flood(app.port, pace=2.0).connect(200).set_up()
    try:
        assert len(flood.held) == 20 and flood.unfinished == 0
        assert flood.refused == [PER_CLIENT] * 180
        t0 = time.monotonic()
        wait_until(lambda: served(app.port, OTHER), 10, "127.0.0.2 served during the flood")
        other_after = time.monotonic() - t0
        assert send_mail(app.port, FLOODER) is None  # the flooder's address is at its cap
        flood.wait_cut(15)  # 10 s after their last activity (idle_timeout would be 60 s)
        cut_after = time.monotonic() - started
        t1 = time.monotonic()
        wait_until(lambda: served(app.port, FLOODER), 10, "127.0.0.1 served after the cut")
        same_after = time.monotonic() - t1
    finally:
        flood.close()
    print(f"\n127.0.0.2 served after {other_after:.2f} s; flood cut {cut_after:.1f} s after "
          f"it began; 127.0.0.1 served {same_after:.2f} s after the cut")


def _fill_the_listener(app, n: int, bound: float) -> None:  # type: ignore[no-untyped-def]
    flood = Flood(app.port).connect(n)
    try:
        with connect(app.port, OTHER) as sock:  # full: even another address must wait
            assert read_reply(sock) == TOO_MANY_CONNECTIONS
        t0 = time.monotonic()
        flood.set_up()
        assert len(flood.held) == n and not flood.refused
        wait_until(lambda: served(app.port, OTHER), t0 + bound - time.monotonic(),
                   f"127.0.0.2 served within {bound} s of the listener being full")
        took = time.monotonic() - t0
        flood.wait_cut(bound)  # all of them: those opened before stress began too
    finally:
        flood.close()
    print(f"\n{n} sessions: 127.0.0.2 served {took:.2f} s after the listener was full "
          f"({flood.unfinished} cut before they were set up)")


def test_a_full_listener_cuts_idle_and_trickling_sessions(make_app) -> None:
    """No per-client cap: one address fills max_connections. Past 80 % every idle,
    keep-alive (NOOP) or trickling session (before EHLO, mid-command, byte-at-a-time DATA,
    a short DATA line at a time) is cut after stress_timeout, shrunk here to 2 s."""
    app = make_app(smtp={"max_connections": 40, "max_connections_per_client": 0,
                         "max_connection_rate": 0, "stress_timeout": "2s",
                         "max_concurrent_data": 40})  # the DATA flood holds slots, not waits
    app.add_account()
    _fill_the_listener(app, 40, 10)


@pytest.mark.slow
def test_two_hundred_connections_fill_the_listener_at_the_default_timeouts(make_app) -> None:
    app = make_app(smtp={"max_connections_per_client": 0, "max_connection_rate": 0,
                         "max_concurrent_data": 200})
    app.add_account()
    _fill_the_listener(app, 200, 10)


def test_trickling_data_cannot_hold_the_data_slots(make_app) -> None:
    """Two DATAs sending a short line now and then hold both DATA slots; a normal client
    waiting for a slot makes them meet the minimum rate, and gets its 250 (else it would
    wait 30 s for a 451)."""
    app = make_app(smtp={"max_concurrent_data": 2, "stress_timeout": "1s"})
    app.add_account()
    flood = Flood(app.port, kinds=("data_lines",)).connect(2).set_up()
    try:
        assert flood.unfinished == 0
        reply = wait_until(lambda: send_mail(app.port, OTHER), 10, "the normal mail")
        assert reply.startswith("250"), reply
        flood.wait_cut(10)
    finally:
        flood.close()


def test_a_slow_but_steady_data_outlives_idle_timeout(make_app) -> None:
    """Out of stress, DATA waits `idle_timeout` for each line, not for the whole DATA
    (aiosmtpd's timer, armed at the DATA command, used to cut it after idle_timeout)."""
    app = make_app(smtp={"idle_timeout": "1s"})
    app.add_account()
    raw = crlf(fax_message(f"{PASSWORD}:0170709901", PDF).as_bytes())
    raw = raw.replace(b"\r\n.", b"\r\n..").rstrip(b"\r\n") + b"\r\n"
    with connect(app.port, OTHER) as sock:
        read_reply(sock)
        for line in (b"EHLO steady.example\r\n", f"MAIL FROM:<{SENDER}>\r\n".encode(),
                     b"RCPT TO:<fax@gw.example.org>\r\n"):
            assert talk(sock, line).startswith(b"250")
        assert talk(sock, b"DATA\r\n").startswith(b"354")
        step = len(raw) // 6 + 1
        stop = threading.Event()
        for i in range(6):  # about 2 s in all, a piece every 0.4 s
            sock.sendall(raw[i * step:(i + 1) * step])
            stop.wait(0.4)  # the client's pace, not a synchronisation
        assert talk(sock, b".\r\n").startswith(b"250")


def test_http_slowloris_does_not_block_healthz_from_another_address(make_app,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr("mailgw.http.protocol.HEAD_TIMEOUT", 3.0)  # the held ones' end, sooner
    app = make_app(http={"listen": "127.0.0.1:0"})
    host, port = app.app.http.address
    held: list[socket.socket] = []
    try:
        for _ in range(40):  # more than the listener's 32
            sock = socket.create_connection((host, port), timeout=30,
                                            source_address=(FLOODER, 0))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a head that never ends
            held.append(sock)
        conn = http.client.HTTPConnection(host, port, timeout=30, source_address=(OTHER, 0))
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200  # the flooder holds only its own 8
        answers = [sock.recv(100).split(b" ", 2)[1] for sock in held]
        assert sorted(answers) == [b"408"] * 8 + [b"503"] * 32  # cut, or refused at once
    finally:
        for sock in held:
            sock.close()
