"""aiosmtpd's public behaviour, on the stock class and on ours (mailgw.smtp.aiosmtpd_compat).

Each test runs real servers on 127.0.0.1, driven by raw sockets or smtplib, for three
protocol classes: aiosmtpd's own `SMTP`, `PatchedSMTP` (the patches alone) and
`GatewaySMTP` (the listener mailgw runs). The answers are pinned, not only compared: an
aiosmtpd upgrade that changes the stock behaviour fails here, and so does a patch that
drifts from it. Where ours differs on purpose, the difference is asserted (the end of the
file), with the reason in aiosmtpd_compat.py or timers.py.
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time
from collections.abc import Awaitable, Iterator
from types import SimpleNamespace
from typing import Any, BinaryIO, TypeVar

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.smtp import __version__ as aiosmtpd_version
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgw.smtp import server as smtp_server
from mailgw.smtp.aiosmtpd_compat import WRITTEN_AGAINST, PatchedSMTP
from mailgw.smtp.flood import Connections
from mailgw.smtp.server import NUL_REFUSED, GatewayHandler, GatewaySMTP

T = TypeVar("T")
KINDS = ["stock", "patched", "gateway"]
LIMIT = 2000  # data_size_limit of the servers below


def test_the_patches_were_checked_on_the_installed_aiosmtpd() -> None:
    """pyproject pins aiosmtpd to the minor version the patches were written against."""
    assert aiosmtpd_version.split(".")[:2] == WRITTEN_AGAINST.split(".")[:2]


# -- servers on a loop of their own ---------------------------------------------------------

class Recorder:
    """A handler that keeps what it is handed and answers `answer` (or raises it)."""

    def __init__(self) -> None:
        self.mails: list[bytes] = []
        self.rcpts: list[str] = []
        self.answer: str | Exception = "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        self.rcpts.append(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.mails.append(envelope.original_content)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Servers:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def start(self, kind: str, handler: Any, **kwargs: Any) -> int:
        """A listener of `kind`; its port."""
        kwargs = {"data_size_limit": LIMIT, "enable_SMTPUTF8": True, "timeout": 30,
                  "hostname": "compat.test", **kwargs}
        data_timeout = kwargs.pop("data_timeout", 60.0)
        max_data = kwargs.pop("max_data", 8)

        async def listen() -> asyncio.Server:
            connections = Connections(50, max_data)

            def factory() -> SMTP:
                if kind == "stock":
                    return SMTP(handler, loop=self.loop, **kwargs)
                if kind == "patched":
                    return PatchedSMTP(handler, loop=self.loop, **kwargs)
                return GatewaySMTP(handler, connections=connections, data_timeout=data_timeout,
                                   loop=self.loop, **kwargs)

            return await self.loop.create_server(factory, "127.0.0.1", 0)

        server = self.run(listen())
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def stop_all(self) -> None:
        servers, self.servers = self.servers, []

        async def close() -> None:  # on the servers' loop: asyncio is not thread-safe
            for server in servers:
                server.close()

        self.run(close())


async def _cancel_sessions() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.run(_cancel_sessions())
    s.loop.call_soon_threadsafe(s.loop.stop)
    s.thread.join(5)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, servers: Servers) -> Iterator[str]:
    yield request.param
    servers.stop_all()


def reply(f: BinaryIO) -> bytes:
    """One whole reply (its last line, for a multi-line one)."""
    while (line := f.readline())[3:4] == b"-":
        pass
    return line.rstrip(b"\r\n")


def command(f: BinaryIO, line: bytes) -> bytes:
    f.write(line + b"\r\n")
    f.flush()
    return reply(f)


def session(port: int) -> tuple[socket.socket, BinaryIO]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f: BinaryIO = sock.makefile("rwb")  # type: ignore[assignment]
    assert reply(f).startswith(b"220 compat.test")
    return sock, f


def open_data(port: int) -> tuple[socket.socket, BinaryIO]:
    """A raw session just after the 354."""
    sock, f = session(port)
    assert command(f, b"EHLO client.example").startswith(b"250")
    assert command(f, b"MAIL FROM:<a@example.com>").startswith(b"250 ")
    assert command(f, b"RCPT TO:<fax@gw.example.org>").startswith(b"250 ")
    assert command(f, b"DATA") == b"354 End data with <CR><LF>.<CR><LF>"
    return sock, f


def send(port: int, data: bytes) -> bytes:
    """`data` (which ends the DATA itself) in a raw DATA; the reply, checked to leave a
    session that goes on."""
    sock, f = open_data(port)
    with sock:
        f.write(data)
        f.flush()
        answer = reply(f)
        assert command(f, b"NOOP") == b"250 OK"
        assert command(f, b"QUIT").startswith(b"221")
    return answer


# -- DATA: the replies ----------------------------------------------------------------------

def test_data_replies(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    sock, f = session(port)
    with sock:
        assert command(f, b"DATA") == b"503 Error: send HELO first"
        assert command(f, b"EHLO client.example") == b"250 HELP"
        assert command(f, b"DATA") == b"503 Error: need RCPT command"
        assert command(f, b"MAIL FROM:<a@example.com>") == b"250 OK"
        assert command(f, b"DATA") == b"503 Error: need RCPT command"
        assert command(f, b"RCPT TO:<fax@gw.example.org>") == b"250 OK"
        assert command(f, b"DATA now") == b"501 Syntax: DATA"
        assert command(f, b"HELP DATA") == b"250 Syntax: DATA"
        assert command(f, b"DATA") == b"354 End data with <CR><LF>.<CR><LF>"
        assert command(f, b"Subject: one\r\n\r\nbody\r\n.") == b"250 OK"
        assert handler.mails == [b"Subject: one\r\n\r\nbody\r\n"]
        # The envelope is fresh after DATA: a second DATA needs its MAIL and RCPT again.
        assert command(f, b"DATA") == b"503 Error: need RCPT command"
        for answer in ("554 5.6.0 Transaction failed", "451 4.3.0 Try later"):
            handler.answer = answer
            assert command(f, b"MAIL FROM:<a@example.com>") == b"250 OK"
            assert command(f, b"RCPT TO:<fax@gw.example.org>") == b"250 OK"
            assert command(f, b"DATA").startswith(b"354")
            assert command(f, b"x\r\n.") == answer.encode()
        handler.answer = RuntimeError("boom")
        assert command(f, b"MAIL FROM:<a@example.com>") == b"250 OK"
        assert command(f, b"RCPT TO:<fax@gw.example.org>") == b"250 OK"
        assert command(f, b"DATA").startswith(b"354")
        assert command(f, b"x\r\n.") == b"500 Error: (RuntimeError) boom"
        assert command(f, b"QUIT").startswith(b"221")


def test_an_empty_mail_and_smtplib(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    assert send(port, b".\r\n") == b"250 OK"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        assert client.sendmail("a@example.com", ["fax@gw.example.org"], b"Subject: s\r\n\r\nb\r\n"
                               ) == {}
    assert handler.mails == [b"", b"Subject: s\r\n\r\nb\r\n"]


# -- the size limit -------------------------------------------------------------------------

def test_size_is_advertised_and_enforced(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    sock, f = session(port)
    with sock:
        f.write(b"EHLO client.example\r\n")
        f.flush()
        lines = []
        while (line := f.readline())[3:4] == b"-":
            lines.append(line.rstrip(b"\r\n"))
        assert b"250-SIZE 2000" in lines and b"250-8BITMIME" in lines and b"250-SMTPUTF8" in lines
        assert command(f, b"MAIL FROM:<a@example.com> SIZE=2001") \
            == b"552 Error: message size exceeds fixed maximum message size"
        assert command(f, b"MAIL FROM:<a@example.com> SIZE=2000") == b"250 OK"
    # The limit counts the lines as sent (CRLF and a stuffed dot included), not the final dot.
    exact = b"x" * 98 + b"\r\n"
    assert send(port, exact * 20 + b".\r\n") == b"250 OK"
    assert send(port, b"." + exact * 20 + b".\r\n") == b"552 Error: Too much mail data"
    assert send(port, exact * 30 + b".\r\n") == b"552 Error: Too much mail data"
    assert handler.mails == [exact * 20]


def test_long_lines(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    # 1001 octets with CRLF pass (aiosmtpd's line_length_limit), 1002 do not.
    assert send(port, b"z" * 999 + b"\r\n.\r\n") == b"250 OK"
    assert send(port, b"z" * 1000 + b"\r\n.\r\n") == b"500 Line too long (see RFC5321 4.5.3.1.6)"
    # Far over the reader's limit: read in pieces, and a piece ending in "." is not the end.
    assert send(port, b"y" * 5000 + b".\r\nafter\r\n.\r\n") \
        == b"500 Line too long (see RFC5321 4.5.3.1.6)"
    # Whichever limit is passed first gives the reply.
    too_much = b"x" * 98 + b"\r\n"
    assert send(port, b"y" * 1500 + b"\r\n" + too_much * 30 + b".\r\n") \
        == b"500 Line too long (see RFC5321 4.5.3.1.6)"
    assert send(port, too_much * 30 + b"y" * 1500 + b"\r\n.\r\n") \
        == b"552 Error: Too much mail data"
    assert handler.mails == [b"z" * 999 + b"\r\n"]


# -- dot-stuffing and bare LF ---------------------------------------------------------------

def test_dot_stuffed_lines_arrive_unstuffed(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    assert send(port, b"..one\r\n...two\r\n.\tthree\r\n. \r\n.x\r\nlast\r\n.\r\n") == b"250 OK"
    text = b"Subject: s\r\n\r\n.leading\r\n..\r\n.\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:  # smtplib stuffs for us
        client.sendmail("a@example.com", ["fax@gw.example.org"], text)
    assert handler.mails == [b".one\r\n..two\r\n\tthree\r\n \r\nx\r\nlast\r\n", text]


def test_bare_lf_neither_ends_data_nor_is_changed(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    for cut in (b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r.\r\n", b"\r\n .\r\n"):
        assert send(port, b"first" + cut + b"second\r\n.\r\n") == b"250 OK"
    assert send(port, b"lf\nonly\n\r\n.\r\n") == b"250 OK"
    # Lines are split at CRLF only: a line that starts with a dot loses it, whatever follows.
    assert handler.mails == [b"first\n.\nsecond\r\n", b"first\r\n\nsecond\r\n",
                             b"first\n.\r\nsecond\r\n", b"first\r\n\r.\r\nsecond\r\n",
                             b"first\r\n .\r\nsecond\r\n", b"lf\nonly\n\r\n"]


def test_nul_and_8bit_bytes_reach_the_handler(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    assert send(port, b"a\x00b\r\n\xff\xfe caf\xc3\xa9\r\n.\r\n") == b"250 OK"
    assert handler.mails == [b"a\x00b\r\n\xff\xfe caf\xc3\xa9\r\n"]


# -- MAIL and RCPT paths --------------------------------------------------------------------

PATHS = [
    ("<a@example.com>", ("a@example.com", "")),
    ("<a.b+tag@example.com> SIZE=100 BODY=8BITMIME", ("a.b+tag@example.com",
                                                     "SIZE=100 BODY=8BITMIME")),
    ("<a@example.com>(comment) x", ("a@example.com", "x")),
    ('<"quoted local"@example.com>', ('"quoted local"@example.com', "")),
    ('<"a\\"b"@example.com>', ('"a\\"b"@example.com', "")),
    ("<user@[192.0.2.1]>", ("user@[192.0.2.1]", "")),
    ("<user@[IPv6:2001:db8::1]>", ("user@[IPv6:2001:db8::1]", "")),
    ("<δοκιμή@παράδειγμα.δοκιμή>", ("δοκιμή@παράδειγμα.δοκιμή", "")),
    ("<jöran@example.com>", ("jöran@example.com", "")),
    ("<>", ("<>", "")),
    ("<> SIZE=10", ("<>", " SIZE=10")),
    ("a@example.com SIZE=5", ("a@example.com", "SIZE=5")),
    (" <a@example.com>", ("a@example.com", "")),
    ("<@route.example:a@example.com>", ("a@example.com", "")),
    ("<a b@example.com>", ('"a b"@example.com', "")),
    ("<a@example.com", ("a@example.com", "")),
    ("<a..b@example.com>", ("a..b@example.com", "")),
    ("<a@example.com>>", ("a@example.com", ">")),
    ("<A@EXAMPLE.COM>x", ("A@EXAMPLE.COM", "x")),
    ("", ("", "")),
    ("<" + "x" * 64 + "@example.com>", ("x" * 64 + "@example.com", "")),
    ("<" + "x" * 65 + "@example.com>", (None, None)),  # over local_part_limit (64 here)
    ("<a@>", (None, None)),
    ("<@example.com>", (None, None)),
    ("a@b@c", (None, None)),
]


def protocols() -> dict[str, SMTP]:
    """One of each class, built on a loop (as aiosmtpd's __init__ wants) and never run."""
    loop = asyncio.new_event_loop()
    handler = Recorder()
    made = {"stock": SMTP(handler, loop=loop), "patched": PatchedSMTP(handler, loop=loop),
            "gateway": GatewaySMTP(handler, connections=Connections(10),  # type: ignore[arg-type]
                                   data_timeout=60, loop=loop)}
    loop.close()
    for p in made.values():
        p.local_part_limit = 64  # RFC 5321's, so that the limit is checked too
    return made


PROTOCOLS = protocols()


@pytest.mark.parametrize("arg,expected", PATHS)
def test_getaddr(arg: str, expected: tuple[str | None, str | None]) -> None:
    assert {k: p._getaddr(arg) for k, p in PROTOCOLS.items()} == dict.fromkeys(KINDS, expected)


_ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
_paths = st.one_of(
    st.builds(lambda local, domain, rest: f"<{local}@{domain}>{rest}",
              st.text(_ATEXT + ".", min_size=0, max_size=12),
              st.text(_ATEXT + ".-[]:", min_size=0, max_size=12),
              st.sampled_from(["", " SIZE=1000", " BODY=8BITMIME", "x", ">", " (c) x"])),
    st.text(_ATEXT + '.<>@"\\ ()[],:;é', max_size=30))


@settings(max_examples=600, deadline=None)
@given(_paths)
def test_getaddr_matches_aiosmtpd_on_any_path(arg: str) -> None:
    def outcome(protocol: SMTP) -> object:
        try:
            return protocol._getaddr(arg)
        except Exception as exc:  # noqa: BLE001 - the stdlib parser raises on some ('0@')
            return type(exc)

    stock = outcome(PROTOCOLS["stock"])
    assert outcome(PROTOCOLS["patched"]) == stock
    assert outcome(PROTOCOLS["gateway"]) == stock


def test_the_method_tables_are_aiosmtpd_s() -> None:
    """The `__dir__` patch finds the same commands and AUTH mechanisms as aiosmtpd."""
    stock = PROTOCOLS["stock"]
    for p in (PROTOCOLS["patched"], PROTOCOLS["gateway"]):
        assert set(p._smtp_methods) == set(stock._smtp_methods)
        assert {m: (a.method.__name__, a.is_builtin) for m, a in p._auth_methods.items()} \
            == {m: (a.method.__name__, a.is_builtin) for m, a in stock._auth_methods.items()}


def test_paths_on_the_wire(kind: str, servers: Servers) -> None:
    handler = Recorder()
    port = servers.start(kind, handler)
    sock, f = session(port)
    with sock:
        assert command(f, b"EHLO client.example").startswith(b"250")
        assert command(f, b"MAIL FROM:<a@>") == b"553 5.1.3 Error: malformed address"
        assert command(f, b"MAIL FROM:<a@example.com> SMTPUTF8") == b"250 OK"
        for path in ('<"quoted local"@example.com>', "<δοκιμή@παράδειγμα.δοκιμή>",
                     "<user@[192.0.2.1]>"):
            assert command(f, b"RCPT TO:" + path.encode()) == b"250 OK"
        assert command(f, b"RCPT TO:<@example.com>") == b"553 5.1.3 Error: malformed address"
    assert handler.rcpts == ['"quoted local"@example.com', "δοκιμή@παράδειγμα.δοκιμή",
                             "user@[192.0.2.1]"]


# -- where ours differs on purpose ----------------------------------------------------------

def test_decode_data_and_proxy_are_refused_by_ours() -> None:
    loop = asyncio.new_event_loop()
    try:
        SMTP(Recorder(), decode_data=True, proxy_protocol_timeout=5, loop=loop)  # stock: fine
        for options in ({"decode_data": True}, {"proxy_protocol_timeout": 5}):
            with pytest.raises(ValueError):
                PatchedSMTP(Recorder(), loop=loop, **options)
    finally:
        loop.close()


class OldHandler:
    """Only the process_message API that aiosmtpd 1.4 still calls (deprecated since 1.0)."""

    async def process_message(self, *args: Any) -> str:
        return "250 from process_message"


def test_process_message_is_called_by_stock_only(kind: str, servers: Servers) -> None:
    port = servers.start(kind, OldHandler())
    expected = b"250 from process_message" if kind == "stock" else b"250 OK"
    assert send(port, b"x\r\n.\r\n") == expected


def closed_with(f: BinaryIO) -> bytes:
    """What the server says before it closes the connection."""
    return f.read()


def test_an_idle_session_is_closed_and_ours_says_why(kind: str, servers: Servers) -> None:
    port = servers.start(kind, Recorder(), timeout=0.3)
    sock, f = session(port)
    with sock:
        assert command(f, b"EHLO client.example").startswith(b"250")
        said = closed_with(f)
    assert said == (b"421 4.4.2 Timeout, closing the connection\r\n" if kind == "gateway"
                    else b"")


def test_in_data_the_idle_timer_waits_per_line_in_ours(kind: str, servers: Servers) -> None:
    """aiosmtpd's timer is not reset by DATA lines: a DATA longer than `timeout` is cut
    however fast it comes; mailgw's waits for each line (and bounds DATA by data_timeout)."""
    handler = Recorder()
    port = servers.start(kind, handler, timeout=0.6)
    sock, f = open_data(port)
    with sock:
        try:
            for i in range(8):
                f.write(b"line %d\r\n" % i)
                f.flush()
                time.sleep(0.2)
            f.write(b".\r\n")
            f.flush()
            answer = reply(f)
        except OSError:
            answer = b"(reset)"
    if kind == "gateway":
        assert answer == b"250 OK"
        assert handler.mails == [b"".join(b"line %d\r\n" % i for i in range(8))]
    else:
        assert answer in (b"", b"(reset)") and handler.mails == []


def test_ours_bounds_the_whole_data(servers: Servers) -> None:
    try:
        port = servers.start("gateway", Recorder(), data_timeout=0.5)
        sock, f = open_data(port)
        with sock:
            f.write(b"a line, then nothing\r\n")
            f.flush()
            assert closed_with(f) == b"421 4.4.2 DATA took too long, closing the connection\r\n"
    finally:
        servers.stop_all()


def test_ours_bounds_the_data_in_flight(servers: Servers, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """A DATA waits for one of `max_data` slots before its 354 (mail is held in memory until
    intake has it); stock aiosmtpd takes any number at once."""
    monkeypatch.setattr(smtp_server, "DATA_WAIT", 0.3)
    try:
        ports = {k: servers.start(k, Recorder(), max_data=1) for k in KINDS}
        for k, port in ports.items():
            first, f1 = open_data(port)
            second, f2 = session(port)
            with first, second:
                assert command(f2, b"EHLO client.example").startswith(b"250")
                assert command(f2, b"MAIL FROM:<b@example.com>") == b"250 OK"
                assert command(f2, b"RCPT TO:<fax@gw.example.org>") == b"250 OK"
                expected = (b"451 4.3.2 Too many mails arriving at once, please try again shortly"
                            if k == "gateway" else b"354 End data with <CR><LF>.<CR><LF>")
                assert command(f2, b"DATA") == expected, k
                assert command(f1, b"x\r\n.") == b"250 OK"
    finally:
        servers.stop_all()


def test_nul_is_refused_by_the_gateway_handler(servers: Servers) -> None:
    """NUL passes aiosmtpd and the patches (above); mailgw's handler refuses it before intake."""
    intake = SimpleNamespace(settings=SimpleNamespace(smtp=SimpleNamespace(trusted_relays=[])),
                             guard=None, channel_of=lambda address: "fax")
    try:
        port = servers.start("gateway", GatewayHandler(intake))  # type: ignore[arg-type]
        assert send(port, b"a\x00b\r\n.\r\n") == NUL_REFUSED.encode()
    finally:
        servers.stop_all()

