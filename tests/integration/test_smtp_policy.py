"""SMTP listener policy against a real smtplib client: size, TLS, AUTH, guessing, limits,
smuggling, 8-bit and NUL."""

from __future__ import annotations

import smtplib
import socket
import ssl
from pathlib import Path

import pytest
import trustme
from sqlalchemy import func, select

from mailgw.store import Job, ProcessedMessage
from tests.conftest import PASSWORD, SENDER, fax_message, wait_until
from tests.integration.test_end_to_end import crlf, send


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    d = tmp_path_factory.mktemp("tls")
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path, ca


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:  # SQLite is enough here
    return f"sqlite:///{tmp_path / 'policy.db'}"


def test_size_is_advertised_and_enforced(make_app, corpus: Path) -> None:
    app = make_app(smtp={"max_message_size": "40KB"})
    app.add_account()
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("size") and client.esmtp_features["size"] == "40000"
    big = (corpus / "pdfs" / "multipage-4-pages-pdflatex-outline.pdf").read_bytes()
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", big))
    assert err.value.smtp_code == 552


def test_starttls_then_auth_lets_the_subject_skip_the_password(make_app, sink, tls_files,
                                                              corpus: Path) -> None:
    cert, key, ca = tls_files
    app = make_app(smtp={"tls_cert": str(cert), "tls_key": str(key)})
    app.add_account()
    app.app._refresh_auth()  # type: ignore[union-attr]  # the account was added after start
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=ctx)
        client.ehlo()
        assert "PLAIN" in client.esmtp_features["auth"].upper()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(SENDER, "not-the-password")
        client.login(SENDER, PASSWORD)
        msg = fax_message(":0170709901:REF-AUTH", pdf)
        client.mail(SENDER)
        client.rcpt("fax@gw.example.org")
        code, text = client.data(crlf(msg.as_bytes()))
    assert code == 250 and b"[80]" in text, text
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), what="notice")


def test_auth_required_refuses_unauthenticated_mail(make_app, tls_files) -> None:
    cert, key, _ = tls_files
    app = make_app(smtp={"tls_cert": str(cert), "tls_key": str(key), "auth_required": True})
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        client.ehlo()
        code, _ = client.mail(SENDER)
        assert code == 530


def test_wrong_passwords_are_slowed_but_never_lock_the_owner_out(make_app, corpus: Path) -> None:
    """Past `auth_failures` wrong guesses with alice's From, her right password still works
    (a From is free to forge: a count of guesses must never turn her off, DESIGN)."""
    from mailgw.ops import metrics

    app = make_app(limits={"auth_failures": 3, "auth_delay": "10ms", "auth_delay_max": "20ms"})
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    wrong = metrics.REGISTRY.get_sample_value("mailgw_wrong_passwords_total") or 0
    for i in range(5):
        with pytest.raises(smtplib.SMTPDataError) as err:
            send(app.port, fax_message(f"guess{i}:0170709901", pdf))
        assert b"[82]" in err.value.smtp_error
    assert (metrics.REGISTRY.get_sample_value("mailgw_wrong_passwords_total") or 0) - wrong == 5
    guard = app.app.intake.guard  # type: ignore[union-attr]
    assert guard.client_delay("127.0.0.1") > 0  # the guesser's next wrong guess waits
    reply = send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf))
    assert reply.startswith("250 2.0.0 [80]"), reply
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_connection_limit(make_app) -> None:
    app = make_app(smtp={"max_connections": 2})
    held = [smtplib.SMTP("127.0.0.1", app.port, timeout=10) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
            greeting = sock.makefile("rb").readline()
        assert greeting.startswith(b"421 4.7.0"), greeting
    finally:
        for c in held:
            c.quit()
    # once they are gone, a new client is served
    wait_until(lambda: smtplib.SMTP("127.0.0.1", app.port, timeout=10).noop()[0] == 250, 10,
               "a free connection slot")


def test_data_timeout(make_app) -> None:
    app = make_app(smtp={"data_timeout": "500ms"})
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for line in (b"EHLO x\r\n", b"MAIL FROM:<alice@example.com>\r\n",
                     b"RCPT TO:<fax@gw.example.org>\r\n", b"DATA\r\n"):
            f.write(line)
            f.flush()
            while (reply := f.readline())[3:4] == b"-":
                pass
        assert reply.startswith(b"354")
        f.write(b"Subject: slow\r\n")
        f.flush()
        assert f.readline().startswith(b"421 4.4.2")  # the client stalls; we give up


def test_no_smuggling_with_bare_lf_end_of_data(make_app, monkeypatch, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    seen: list[bytes] = []
    original = app.app.intake.handle

    def spy(raw: bytes, env):  # type: ignore[no-untyped-def]
        seen.append(raw)
        return original(raw, env)

    monkeypatch.setattr(app.app.intake, "handle", spy)
    smuggled = (b"From: alice@example.com\r\nSubject: hello\r\n\r\nfirst\n.\n"
                b"MAIL FROM:<evil@example.net>\nRCPT TO:<fax@gw.example.org>\nDATA\n"
                b"Subject: " + PASSWORD.encode() + b":0170709901\n\nsecond\r\n")
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for line in (b"EHLO x\r\n", b"MAIL FROM:<alice@example.com>\r\n",
                     b"RCPT TO:<fax@gw.example.org>\r\n", b"DATA\r\n"):
            f.write(line)
            f.flush()
            while f.readline()[3:4] == b"-":
                pass
        f.write(smuggled + b".\r\n")
        f.flush()
        f.readline()
        f.write(b"QUIT\r\n")
        f.flush()
    assert len(seen) == 1
    assert b"MAIL FROM:<evil@example.net>" in seen[0]  # stayed inside the one message


def test_eight_bit_sender_needs_smtputf8_and_nul_is_refused(make_app) -> None:
    app = make_app()
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(b"EHLO x\r\n")
        f.flush()
        while f.readline()[3:4] == b"-":
            pass
        f.write("MAIL FROM:<andré@example.com>\r\n".encode())
        f.flush()
        assert f.readline()[:1] == b"5"
        f.write("MAIL FROM:<andré@example.com> SMTPUTF8\r\n".encode())
        f.flush()
        assert f.readline().startswith(b"250")
    with pytest.raises(smtplib.SMTPDataError) as err:
        with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
            client.ehlo()
            client.mail(SENDER)
            client.rcpt("fax@gw.example.org")
            code, text = client.data(b"Subject: x\r\n\r\nnul\x00byte\r\n")
            raise smtplib.SMTPDataError(code, text)
    assert err.value.smtp_code == 554


def test_the_password_needs_no_processed_row_when_unproven(make_app, corpus: Path) -> None:
    """Unproven mail leaves no idempotency row that could later answer for the real sender."""
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    msg = fax_message("WRONG:0170709901", pdf, message_id="<m1@example.com>")
    with pytest.raises(smtplib.SMTPDataError):
        send(app.port, msg)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 0
