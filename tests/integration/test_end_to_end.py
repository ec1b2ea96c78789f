"""The whole path over real SMTP: smtplib → our listener → intake → store → dispatch
(simulator) → notify → outbox → a real SMTP sink. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw.store import Attempt, Delivery, Job, OutboxMail
from tests.conftest import PASSWORD, SENDER, fax_message, wait_until


def crlf(raw: bytes) -> bytes:
    """SMTP lines end in CRLF; smtplib does not fix bytes for us."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send(port: int, msg) -> str:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        code, text = _data(client, msg)
    if code != 250:
        raise smtplib.SMTPDataError(code, text.encode())
    return f"{code} {text}"


def _data(client: smtplib.SMTP, msg) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    client.mail(str(msg["From"]))
    for rcpt in [a.strip() for a in str(msg["To"]).split(",")]:
        code, text = client.rcpt(rcpt)
        assert code == 250, (code, text)
    code, text = client.data(crlf(msg.as_bytes()))
    return code, text.decode()


def test_fax_goes_through_and_notice_comes_back(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "multipage-4-pages-pdflatex-outline.pdf").read_bytes()
    msg = fax_message(f"{PASSWORD}:01 70 70 99 01:INV-7:relance: client A", pdf)

    reply = send(app.port, msg)
    assert reply.startswith("250 2.0.0 [80]"), reply

    mails = sink.wait_for(lambda ms: len(ms) >= 2, what="ack and notice")
    ack = next(m for m in mails if m["X-Mailgw-Kind"] == "ack")
    notice = next(m for m in mails if m["X-Mailgw-Kind"] == "notice")
    job_id = ack["X-Mailgw-Job"]
    assert ack["X-Mailgw-Code"] == "80"
    assert ack["Subject"].startswith("[80]")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Mailgw-Loop"] == "gw.example.org"
    assert ack["In-Reply-To"] == msg["Message-ID"]
    assert ack["To"] == SENDER
    assert notice["X-Mailgw-Job"] == job_id
    assert notice["X-Mailgw-State"] == "delivered"
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert "CSID: (+33 1 70 70 99 01)" in text
    assert "Pages: 4/4" in text
    assert "+33 1 70 70 99 01" in text
    assert "relance: client A" in text and "INV-7" in text
    html = notice.get_body(preferencelist=("html",)).get_content()
    assert "4/4" in html
    # Envelope: acks and notices go out from <> to the proven sender only.
    assert sink.envelopes and all(frm in ("", "<>") and rcpts == [SENDER]
                                  for frm, rcpts in sink.envelopes), sink.envelopes
    # The password is never echoed.
    for m in mails:
        assert PASSWORD not in m.as_string()

    with app.store.read() as s:
        job = s.get(Job, int(job_id))
        assert job is not None and job.state == "done" and job.outcome == "delivered_all"
        assert job.pages == 4 and PASSWORD not in (job.subject or "")
        (delivery,) = job.deliveries
        assert (delivery.number, delivery.state, delivery.pages_sent) == (
            "+33170709901", "delivered", 4)
        attempts = s.scalars(select(Attempt).where(Attempt.delivery_id == delivery.id)).all()
        assert [a.result for a in attempts] == ["delivered"]

    def both_marked_sent() -> bool:  # the sink may see the mail just before the sent mark
        with app.store.read() as s:
            return s.scalar(select(func.count()).select_from(OutboxMail)
                            .where(OutboxMail.sent_at.is_not(None))) == 2

    wait_until(both_marked_sent, what="both outbox rows marked sent")


def test_several_numbers_retries_and_partial(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "two-pages-different-sizes.pdf").read_bytes()
    # 90 busy then delivered; 92 drops after page 1 then resumes; 96 partial; 97 not in service
    numbers = "0170709990, 0170709992; 0170709996, 0170709997"
    reply = send(app.port, fax_message(f"{PASSWORD}:{numbers}:R1", pdf))
    assert reply.startswith("250 2.0.0 [80]"), reply
    notices = sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"])
                            >= 4, what="four notices")
    states = {m["Subject"].split(" to ")[1].split(" (")[0]: m["X-Mailgw-State"]
              for m in notices if m["X-Mailgw-Kind"] == "notice"}
    assert states == {"+33 1 70 70 99 90": "delivered", "+33 1 70 70 99 92": "delivered",
                      "+33 1 70 70 99 96": "partial", "+33 1 70 70 99 97": "failed"}
    by_number = {m["Subject"].split(" to ")[1].split(" (")[0]: m
                 for m in notices if m["X-Mailgw-Kind"] == "notice"}
    resumed = by_number["+33 1 70 70 99 92"].get_body(("plain",)).get_content()
    assert "pages 1–1" in resumed and "pages 2–2" in resumed, resumed
    failed = by_number["+33 1 70 70 99 97"].get_body(("plain",)).get_content()
    assert "number not in service" in failed and "Gave up" in failed
    with app.store.read() as s:
        job = s.scalar(select(Job))
        assert job is not None and job.outcome == "partial"
        d90 = s.scalar(select(Delivery).where(Delivery.number == "+33170709990"))
        assert d90 is not None and d90.attempts == 2


def test_refusals_answer_in_smtp_and_unproven_get_nothing(make_app, sink, corpus) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()

    with pytest.raises(smtplib.SMTPDataError) as wrong:
        send(app.port, fax_message("WRONG:0170709901", pdf))
    assert wrong.value.smtp_code == 550 and b"[82]" in wrong.value.smtp_error

    with pytest.raises(smtplib.SMTPDataError) as unknown:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf, sender="eve@example.net"))
    assert b"[82]" in unknown.value.smtp_error

    # A proven sender with a refused mail gets the 5xx and an ack with the code.
    with pytest.raises(smtplib.SMTPDataError) as nodoc:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", None))
    assert nodoc.value.smtp_code == 554 and b"[92]" in nodoc.value.smtp_error
    encrypted = (corpus / "pdfs" / "encrypted-rc4-128-user-password.pdf").read_bytes()
    with pytest.raises(smtplib.SMTPDataError) as bad:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", encrypted))
    assert b"[93]" in bad.value.smtp_error
    with pytest.raises(smtplib.SMTPDataError) as badnum:
        send(app.port, fax_message(f"{PASSWORD}:0123", pdf))
    assert b"[84]" in badnum.value.smtp_error

    acks = sink.wait_for(lambda ms: len(ms) >= 3, what="three acks")
    assert sorted(m["X-Mailgw-Code"] for m in acks) == ["84", "92", "93"]
    # Absence proven by order: the unproven mails were answered before these acks existed.
    assert all(m["X-Mailgw-Kind"] == "ack" for m in acks)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_no_open_relay(make_app) -> None:
    app = make_app()
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        client.ehlo()
        client.mail("alice@example.com")
        for rcpt in ("someone@elsewhere.example", "fax%elsewhere.example@gw.example.org",
                     "@relay.example:fax@gw.example.org", "abc@gw.example.org"):
            code, text = client.rcpt(rcpt)
            assert 550 <= code < 560 and text.startswith(b"5."), (rcpt, code, text)
        assert client.rcpt("fax@gw.example.org")[0] == 250
        assert client.rcpt("+33170709901@gw.example.org")[0] == 250


def test_number_from_the_address(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    msg = fax_message(f"{PASSWORD}::REF", pdf, to="+33170709901@gw.example.org")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), what="notice")


def test_same_mail_twice_gives_same_answer_and_one_job(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    msg = fax_message(f"{PASSWORD}:0170709901", pdf, message_id="<same-1@example.com>")
    first = send(app.port, msg)
    second = send(app.port, msg)
    assert first == second and first.startswith("250 2.0.0 [80]")
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), what="notice")
    assert len(sink.kinds("ack")) == 1
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_auto_replies_are_dropped_silently(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    raw = (corpus / "emails" / "70-vacation-automatic-reply.eml").read_bytes()
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        code, _ = client.ehlo()
        client.mail("")
        client.rcpt("fax@gw.example.org")
        code, text = client.data(crlf(raw))
    assert code == 250
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf))
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), what="notice")
    assert len(sink.messages) == 2  # the ack and notice of the real fax, nothing for the bounce
