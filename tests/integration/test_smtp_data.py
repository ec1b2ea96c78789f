"""The DATA phase as mailgw receives it (one buffer instead of aiosmtpd's list of lines),
against real clients: dot-stuffing, the size and line limits, where DATA ends, large mails."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import func, select

from mailgw.documents.samples import make_pdf
from mailgw.store import Job
from tests.conftest import PASSWORD, SENDER, fax_message
from tests.integration.test_end_to_end import crlf


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'data.db'}"


def spy_on_intake(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The raw mails intake is handed, in order."""
    seen: list[bytes] = []
    original = app.app.intake.handle

    def spy(raw: bytes, env: Any) -> Any:
        seen.append(raw)
        return original(raw, env)

    monkeypatch.setattr(app.app.intake, "handle", spy)
    return seen


def reply(f: BinaryIO) -> bytes:
    """One whole (possibly multi-line) reply."""
    while (line := f.readline())[3:4] == b"-":
        pass
    return line


def command(f: BinaryIO, line: bytes) -> bytes:
    f.write(line)
    f.flush()
    return reply(f)


def open_data(port: int) -> tuple[socket.socket, BinaryIO]:
    """A raw session left just after the 354."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    f: BinaryIO = sock.makefile("rwb")  # type: ignore[assignment]
    reply(f)
    assert command(f, b"EHLO client.example.com\r\n").startswith(b"250")
    assert command(f, f"MAIL FROM:<{SENDER}>\r\n".encode()).startswith(b"250")
    assert command(f, b"RCPT TO:<fax@gw.example.org>\r\n").startswith(b"250")
    assert command(f, b"DATA\r\n").startswith(b"354")
    return sock, f


def send_raw_data(port: int, data: bytes, then: Callable[[BinaryIO], None] | None = None
                  ) -> bytes:
    """Send `data` (which must end the DATA itself) on a raw session; the reply to it."""
    sock, f = open_data(port)
    with sock:
        f.write(data)
        f.flush()
        answer = reply(f)
        if then is not None:
            then(f)
        command(f, b"QUIT\r\n")
    return answer


HEADERS = b"From: " + SENDER.encode() + b"\r\nSubject: " + PASSWORD.encode() + b":0170709901\r\n"


def test_dot_stuffed_lines_reach_intake_unstuffed(make_app, monkeypatch) -> None:
    app = make_app()
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)
    body = b"\r\n..one dot\r\n...two dots\r\n.\tnot the end\r\n. \r\nlast\r\n"
    send_raw_data(app.port, HEADERS + body + b".\r\n")
    assert seen == [HEADERS + b"\r\n.one dot\r\n..two dots\r\n\tnot the end\r\n \r\nlast\r\n"]
    # smtplib stuffs for its caller: what it was given is what intake gets.
    text = HEADERS + b"\r\n.leading\r\n..\r\n.\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt("fax@gw.example.org")
        client.data(text)
    assert seen[1] == text


def test_only_a_lone_dot_line_ends_data(make_app, monkeypatch) -> None:
    """A dot between bare LFs (or a bare LF and a CRLF) is mail, not the end: no smuggling."""
    app = make_app()
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)
    inner = (b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<fax@gw.example.org>\r\nDATA\r\n"
             b"Subject: smuggled\r\n\r\nsecond\r\n")
    for cut in (b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r\n.\r.\r\n", b"\r\n .\r\n"):
        send_raw_data(app.port, HEADERS + b"\r\nfirst" + cut + inner + b".\r\n")
    assert len(seen) == 5
    for raw in seen:
        assert b"MAIL FROM:<evil@example.net>" in raw and raw.endswith(b"second\r\n")


def test_too_much_data_is_refused_after_the_end_and_the_session_goes_on(
        make_app, monkeypatch) -> None:
    app = make_app(smtp={"max_message_size": "40KB"})
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)
    lines = b"".join(b"line %05d " % i + b"x" * 60 + b"\r\n" for i in range(1000))  # 71 KB

    def next_mail_still_works(f: BinaryIO) -> None:
        assert command(f, f"MAIL FROM:<{SENDER}>\r\n".encode()).startswith(b"250")
        assert command(f, b"RCPT TO:<fax@gw.example.org>\r\n").startswith(b"250")
        assert command(f, b"DATA\r\n").startswith(b"354")
        f.write(HEADERS + b"\r\nsmall\r\n.\r\n")
        f.flush()
        reply(f)

    answer = send_raw_data(app.port, HEADERS + b"\r\n" + lines + b".\r\n", next_mail_still_works)
    assert answer.startswith(b"552"), answer
    assert seen == [HEADERS + b"\r\nsmall\r\n"]


def test_long_lines_are_refused_after_the_end_and_the_session_goes_on(
        make_app, monkeypatch) -> None:
    app = make_app()
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)

    def noop(f: BinaryIO) -> None:
        assert command(f, b"NOOP\r\n").startswith(b"250")

    # Far over the reader's limit: read in pieces, and a piece ending in "." is not the end.
    long_line = b"y" * 5000 + b".\r\n"
    answer = send_raw_data(app.port, HEADERS + b"\r\n" + long_line + b"after\r\n.\r\n", noop)
    assert answer.startswith(b"500"), answer
    # Just over RFC 5321's 1000 octets (CRLF included), and just under it.
    answer = send_raw_data(app.port, HEADERS + b"\r\n" + b"z" * 1000 + b"\r\n.\r\n", noop)
    assert answer.startswith(b"500"), answer
    assert seen == []
    send_raw_data(app.port, HEADERS + b"\r\n" + b"z" * 998 + b"\r\n.\r\n")
    assert seen == [HEADERS + b"\r\n" + b"z" * 998 + b"\r\n"]


def test_a_client_gone_mid_data_hands_nothing_to_intake_and_frees_its_slot(
        make_app, monkeypatch) -> None:
    app = make_app(smtp={"max_concurrent_data": 1})
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)
    sock, f = open_data(app.port)
    f.write(HEADERS + b"\r\nhalf a mail\r\n")
    f.flush()
    f.close()
    sock.close()  # with its makefile closed too, the connection really goes
    # The one DATA slot is free again (else this DATA would wait for it, then get a 451).
    send_raw_data(app.port, HEADERS + b"\r\nwhole\r\n.\r\n")
    assert seen == [HEADERS + b"\r\nwhole\r\n"]


def test_a_10_mb_mail_is_received_whole_and_committed(make_app, monkeypatch) -> None:
    app = make_app()
    app.add_account()
    seen = spy_on_intake(app, monkeypatch)
    pdf = make_pdf([[f"line {i:06d} " + "x" * 60 for i in range(110_000)]])
    assert len(pdf) > 7_500_000
    msg = crlf(fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes())
    assert len(msg) > 10_000_000
    with smtplib.SMTP("127.0.0.1", app.port, timeout=120) as client:
        client.ehlo()
        client.mail(SENDER)
        client.rcpt("fax@gw.example.org")
        code, text = client.data(msg)
    assert code == 250 and b"[80]" in text, text
    assert seen == [msg]
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_data_out_of_order_or_with_an_argument_is_refused_as_aiosmtpd_does(make_app) -> None:
    app = make_app()
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as sock:
        f: BinaryIO = sock.makefile("rwb")  # type: ignore[assignment]
        reply(f)
        assert command(f, b"DATA\r\n").startswith(b"503")  # no HELO/EHLO yet
        assert command(f, b"EHLO client.example.com\r\n").startswith(b"250")
        assert command(f, b"DATA\r\n").startswith(b"503")  # no MAIL, no RCPT
        assert command(f, f"MAIL FROM:<{SENDER}>\r\n".encode()).startswith(b"250")
        assert command(f, b"DATA\r\n").startswith(b"503")  # no RCPT
        assert command(f, b"RCPT TO:<fax@gw.example.org>\r\n").startswith(b"250")
        assert command(f, b"DATA now\r\n").startswith(b"501")
        assert command(f, b"HELP DATA\r\n").startswith(b"250 Syntax: DATA")
        assert command(f, b"DATA\r\n").startswith(b"354")
        f.close()
