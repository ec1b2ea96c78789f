"""Intake through the real SMTP listener: recipients from every source, documents, details
in the account's language, exactly-once answers, header safety, and the whole corpus."""

from __future__ import annotations

import json
import shutil
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw.accounts import groups
from mailgw.documents.samples import make_pdf
from mailgw.store import Account, Delivery, Job, ProcessedMessage
from tests.conftest import PASSWORD, SENDER, fax_message
from tests.integration.test_end_to_end import crlf, send


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intake.db'}"


def ack_of(sink, n: int = 1) -> EmailMessage:  # type: ignore[no-untyped-def]
    acks = sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "ack"]) >= n,
                         what=f"{n} ack(s)")
    return [m for m in acks if m["X-Mailgw-Kind"] == "ack"][n - 1]


def text(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def test_numbers_from_subject_list_and_csv(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901, 0170709901:REF", make_pdf([["x"]]))
    msg.add_attachment(b"0612345678\n0170709901;abc\n+44 20 7946 0958\n", maintype="text",
                       subtype="plain", filename="numbers.txt")
    msg.add_attachment("NOM;FAX;VILLE\nDupont;01 70 70 99 02;Paris\nMartin;nope;Lyon\n"
                       .encode("cp1252"), maintype="text", subtype="csv", filename="list.csv")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    body = text(ack_of(sink))
    assert "+33 1 70 70 99 01" in body and "+44 20 7946 0958" in body
    assert "abc" in body and "nope" in body  # invalid ones are listed
    assert "Duplicates (sent once): 2" in body
    assert "numbers.txt" in body and "list.csv" in body
    with app.store.read() as s:
        numbers = {d.number: d.columns for d in s.scalars(select(Delivery))}
    assert set(numbers) == {"+33170709901", "+33612345678", "+442079460958", "+33170709902"}
    assert json.loads(numbers["+33170709902"] or "{}") == {"NOM": "Dupont", "VILLE": "Paris"}


def test_contact_groups(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    with app.store.tx() as s:
        groups.add_numbers(s, SENDER, "clients", ["0170709903", "0170709904", "xyz"])
    pdf = make_pdf([["x"]])
    assert send(app.port, fax_message(f"{PASSWORD}:@clients", pdf)).startswith("250 2.0.0 [80]")
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(app.port, fax_message(f"{PASSWORD}:@nobody,0170709901", pdf))
    assert b"[86]" in err.value.smtp_error and b"@nobody" in err.value.smtp_error
    with app.store.read() as s:
        assert sorted(d.number for d in s.scalars(select(Delivery))) == [
            "+33170709903", "+33170709904"]


def test_refusal_details_in_the_accounts_language(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account(lang="fr")
    app.add_account("ivan@example.ru", PASSWORD, lang="ru", region="RU", tz="Europe/Moscow")
    encrypted = (corpus / "pdfs" / "encrypted-rc4-user-password-test.pdf").read_bytes()
    with pytest.raises(smtplib.SMTPDataError) as fr:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", encrypted))
    assert b"[93] Document inutilisable" in fr.value.smtp_error
    assert b"protege par un mot de passe" in fr.value.smtp_error  # ASCII without SMTPUTF8
    assert "protégé par un mot de passe" in text(ack_of(sink))
    with pytest.raises(smtplib.SMTPDataError) as ru:
        send(app.port, fax_message(f"{PASSWORD}:+33170709901", encrypted,
                                   sender="ivan@example.ru"))
    # without SMTPUTF8: Russian in Latin letters (ICAO 9303), not English
    assert b"[93] Dokument neprigoden" in ru.value.smtp_error
    assert b"zashchishchen parolem" in ru.value.smtp_error
    ack_ru = ack_of(sink, 2)
    assert "защищён паролем" in text(ack_ru) and ack_ru["Subject"].startswith("[93]")


def test_word_file_named_pdf_and_truncated_pdf(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    word = fax_message(f"{PASSWORD}:0170709901", None)
    word.add_attachment(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, maintype="application",
                        subtype="pdf", filename="contrat.pdf")
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(app.port, word)
    assert b"[93]" in err.value.smtp_error and b"contrat.pdf is not a PDF" in err.value.smtp_error
    truncated = make_pdf([["x"], ["y"]])[:300]
    with pytest.raises(smtplib.SMTPDataError) as err2:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", truncated))
    assert b"[93]" in err2.value.smtp_error and b"damaged or truncated" in err2.value.smtp_error


def test_several_pdfs_become_one_fax_and_other_files_are_ignored(make_app, sink,
                                                               corpus: Path) -> None:
    app = make_app()
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901", make_pdf([["one"]]))
    msg.add_attachment((corpus / "pdfs" / "multipage-4-pages-pdflatex-outline.pdf").read_bytes(),
                       maintype="application", subtype="octet-stream", filename="annexe.bin")
    msg.add_attachment(b"PK\x03\x04 not really", maintype="application", subtype="zip",
                       filename="notes.zip")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    body = text(ack_of(sink))
    assert "Pages: 5" in body and "notes.zip" in body and "Attachments ignored" in body
    with app.store.read() as s:
        job = s.scalar(select(Job))
        assert job is not None and job.pages == 5


def test_a_broken_office_file_beside_pdfs(make_app, sink) -> None:
    """With LibreOffice an office file is part of the fax: a broken one is refused (93,
    named), never dropped in silence; without it, office files are ignored beside PDFs."""
    app = make_app()
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901", make_pdf([["one"]]))
    msg.add_attachment(b"PK\x03\x04 not really", maintype="application",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                       filename="notes.docx")
    if shutil.which("soffice"):
        assert b"[93]" in _refusal(app, msg) and b"notes.docx" in _refusal(app, msg)
    else:
        assert send(app.port, msg).startswith("250 2.0.0 [80]")
        body = text(ack_of(sink))
        assert "notes.docx" in body and "Attachments ignored" in body


def _refusal(app, msg: EmailMessage) -> bytes:  # type: ignore[no-untyped-def]
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(app.port, msg)
    return err.value.smtp_error


def _credits(app) -> int | None:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        account = s.scalar(select(Account))
        assert account is not None
        return account.credits


def test_credits_are_reserved_and_never_negative(make_app, sink) -> None:
    app = make_app()
    app.add_account(credits=3)
    pdf = make_pdf([["a"], ["b"]])
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf)).startswith("250")
    assert b"[83]" in _refusal(app, fax_message(f"{PASSWORD}:0170709902", pdf))
    assert _credits(app) == 1


def test_credits_refilled_by_another_process_count_at_once(make_app, sink) -> None:
    """The account of a mail is remembered for a second, but its credits never: a refill
    written behind this process's back (no ORM flush here) is used by the very next mail."""
    app = make_app()
    app.add_account(credits=0)
    pdf = make_pdf([["a"], ["b"]])
    assert b"[83]" in _refusal(app, fax_message(f"{PASSWORD}:0170709901", pdf))
    with app.store.engine.begin() as conn:  # as `mailgw account set --credits` elsewhere
        conn.execute(Account.__table__.update().values(credits=4))
    assert send(app.port, fax_message(f"{PASSWORD}:0170709902", pdf)).startswith("250")
    assert _credits(app) == 2


def test_a_credit_limit_set_in_this_process_applies_to_the_next_mail(make_app, sink) -> None:
    """An account without a limit is not read again at commit; a limit set here (an ORM
    flush: the remembered accounts are forgotten) still counts for the very next mail."""
    from mailgw.accounts import accounts

    app = make_app()
    app.add_account()  # no credit limit
    pdf = make_pdf([["a"], ["b"]])
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf)).startswith("250")
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, credits="1")
    assert b"[83]" in _refusal(app, fax_message(f"{PASSWORD}:0170709902", pdf))
    assert _credits(app) == 1


def test_the_account_of_a_mail_is_remembered_briefly(make_app) -> None:
    from mailgw.accounts import accounts

    app = make_app()
    app.add_account()
    now = [100.0]
    cache = accounts.MailAccounts(app.store.read_engine, ttl=1.0, clock=lambda: now[0])
    first = cache.get(sender=SENDER.upper())
    assert first is not None and first.email == SENDER
    assert cache.get(sender="nobody@example.com") is None
    with app.store.engine.begin() as conn:  # another process changes the row (no flush here)
        conn.execute(Account.__table__.update().values(lang="ru"))
    assert cache.get(sender=SENDER) is first  # within the second: remembered
    now[0] += 1.5
    again = cache.get(sender=SENDER)
    assert again is not None and again.lang == "ru"  # after it: read again
    with app.store.tx() as s:  # a change made in this process is seen at once
        accounts.set_password(s, SENDER, "An0ther-pass")
    changed = cache.get(sender=SENDER)
    assert changed is not None and changed.password_hash != again.password_hash
    assert cache.get(login=SENDER) is not None and cache.get(login="nobody@x.org") is None


def test_user_text_never_reaches_a_header_unescaped(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    msg = fax_message("placeholder", make_pdf([["x"]]))
    del msg["Subject"]
    # An encoded word can carry CR/LF once decoded: it must not become a header.
    msg["Subject"] = (f"=?utf-8?q?{PASSWORD}:0170709901:R:caf=C3=A9=0D=0ABcc:_victim@example.org"
                      "=0D=0A=0D=0Ainjected?=")
    assert send(app.port, msg).startswith("250")
    ack = ack_of(sink)
    assert ack["Bcc"] is None
    assert "\n" not in ack["Subject"] and "café" in ack["Subject"]
    raw_headers = ack.as_string().split("\n\n", 1)[0]
    assert "\nBcc:" not in raw_headers
    assert PASSWORD not in ack.as_string()


def test_no_message_id_is_still_exactly_once(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901", make_pdf([["x"]]))
    del msg["Message-ID"]
    first, second = send(app.port, msg), send(app.port, msg)
    assert first == second
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
        key = s.scalar(select(ProcessedMessage.message_id))
        assert key is not None and key.startswith("sha256:")


def _lose_the_first_acceptance(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The listener drops the connection instead of sending the first 250 (as if the process
    died between commit and reply); the reply it did not send is kept in the list."""
    from mailgw.smtp import server as smtp_server

    dropped: list[str] = []
    original_push = smtp_server.GatewaySMTP.push

    async def push(self, status):  # type: ignore[no-untyped-def]
        if isinstance(status, str) and status.startswith("250 2.0.0 [") and not dropped:
            dropped.append(status)
            self.transport.abort()
            return
        await original_push(self, status)

    monkeypatch.setattr(smtp_server.GatewaySMTP, "push", push)
    return dropped


@pytest.mark.parametrize("restart", [False, True], ids=["same-process", "restarted"])
def test_reply_lost_after_commit_the_retry_makes_no_second_job(make_app, sink, monkeypatch,
                                                               restart: bool) -> None:
    """The server commits, then the connection dies before the 250 (a crash between commit
    and reply); the sending MTA retries the same mail: one job, one ack, the same answer.
    Restarted in between, the new process remembers no answer: the retry reaches the
    store, where the idempotency key's unique index stops a second job."""
    app = make_app()
    app.add_account()
    dropped = _lose_the_first_acceptance(monkeypatch)
    msg = fax_message(f"{PASSWORD}:0170709901", make_pdf([["x"]]))
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        send(app.port, msg)
    if restart:
        app.stop()
        app = make_app()  # same store, a fresh process state
    retry = send(app.port, msg)
    assert retry.startswith("250 2.0.0 [80]") and retry == dropped[0]
    other = send(app.port, fax_message(f"{PASSWORD}:0170709902", make_pdf([["y"]])))
    assert other.startswith("250 2.0.0 [80]") and other != retry  # the store still works
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) >= 2,
                  what="two notices")
    assert len(sink.kinds("ack")) == 2  # one per mail, none for the retry
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 2


def test_every_corpus_mail_gets_an_answer_and_never_a_crash(make_app, sink,
                                                          corpus: Path) -> None:
    app = make_app(limits={"auth_failures": 1000})  # 55 unknown senders from one IP
    app.add_account()
    codes = {}
    for path in sorted((corpus / "emails").glob("*.eml")):
        raw = path.read_bytes()
        with smtplib.SMTP("127.0.0.1", app.port, timeout=30) as client:
            client.ehlo()
            client.mail(SENDER)
            client.rcpt("fax@gw.example.org")
            code, reply = client.data(crlf(raw))
        codes[path.name] = code
        assert code == 250 or 500 <= code < 600, (path.name, code, reply)
    expected = json.loads((corpus / "expected.json").read_text())
    for entry in expected:
        if entry["is_auto_reply"]:
            assert codes[entry["file"]] == 250, entry["file"]  # accepted and dropped
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        assert client.noop()[0] == 250  # still serving


def test_a_repeat_is_answered_from_memory_only_with_the_right_password(
        make_app, sink, monkeypatch: pytest.MonkeyPatch) -> None:
    """An MTA that lost our 250 sends the mail again: once the password is checked, the
    first answer comes back without reading the document again (still one job). The same
    Message-ID with a wrong password is not a repeat: it is refused (82) like any other."""
    from mailgw.documents import checks as documents

    app = make_app()
    app.add_account()
    reads: list[int] = []
    check_pdf = documents.check_pdf

    def counted(data, limits):  # type: ignore[no-untyped-def]
        reads.append(len(data))
        return check_pdf(data, limits)

    monkeypatch.setattr(documents, "check_pdf", counted)
    pdf = make_pdf([["x"]])
    msg = fax_message(f"{PASSWORD}:0170709901", pdf, message_id="<repeat-1@example.com>")
    first = send(app.port, msg)
    assert first.startswith("250 2.0.0 [80]") and len(reads) == 1
    assert send(app.port, msg) == first and len(reads) == 1
    wrong = fax_message("Wrong-pass9:0170709901", pdf, message_id="<repeat-1@example.com>")
    assert b"[82]" in _refusal(app, wrong)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
