"""Notifications: summary with its CSV, failures only, notice address, webhooks (signed,
retried), operator templates, preview, and 200 notices through a smarthost that was down."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailgw.accounts import accounts
from mailgw.documents.samples import make_pdf
from mailgw.notify import mime, render
from mailgw.notify.messages import AckFacts, ack_mail, notice_mail
from mailgw.notify.mime import compose, compose_email
from mailgw.notify.outbox import OutboxSender, enqueue
from mailgw.notify.preview import _sample
from mailgw.notify.render import Rendered, Renderer, header_text
from mailgw.notify.words import words
from mailgw.store import OutboxMail, Store, utcnow
from tests.conftest import (
    PASSWORD,
    SENDER,
    Sink,
    SinkHandler,
    fax_message,
    free_port,
    make_settings,
    wait_until,
)
from tests.integration.test_cli import mailgw
from tests.integration.test_end_to_end import send


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notify.db'}"


def test_summary_mode_sends_one_mail_with_the_csv(make_app, sink) -> None:
    app = make_app(notify={"on": "summary"})
    app.add_account()
    msg = fax_message(f"{PASSWORD}:0170709901,0170709997:INV-9", make_pdf([["a"], ["b"]]))
    msg.add_attachment(b"NOM;FAX\nDupont;0170709902\n", maintype="text",
                       subtype="csv", filename="l.csv")
    assert send(app.port, msg).startswith("250 2.0.0 [80]")
    mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "summary" for m in ms),
                          what="the summary")
    assert [m["X-Mailgw-Kind"] for m in mails].count("notice") == 0
    summary = next(m for m in mails if m["X-Mailgw-Kind"] == "summary")
    assert summary["X-Mailgw-Outcome"] == "Partial success"
    assert summary["Subject"].startswith("[Partial success]")
    (att,) = [p for p in summary.iter_attachments()]
    raw = att.get_content()
    data = raw if isinstance(raw, bytes) else raw.encode()
    assert data.startswith("\ufeff".encode())
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0] == ("REF_LIST;ID_LINE;INT_NUMBER;STATUS_CODE;STATUS_TEXT;DELIVERYDATE;"
                        "PAGES;CSID;ATTEMPTS;NOM")
    rows = {line.split(";")[2]: line.split(";") for line in lines[1:]}
    assert rows["33170709901"][3] == "21" and rows["33170709997"][3] == "117"
    assert rows["33170709902"][-1] == "Dupont"


def test_failures_mode_and_notice_address(make_app, sink) -> None:
    app = make_app(notify={"on": "failures"})
    app.add_account()
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, notice_address="reports@example.com")
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901,0170709997", make_pdf([["x"]])))
    mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                          what="a notice")
    wait_until(lambda: all(r.sent_at for r in _outbox(app)), what="the outbox drained")
    notices = sink.kinds("notice")
    assert [n["X-Mailgw-State"] for n in notices] == ["failed"]
    assert notices[0]["To"] == "reports@example.com"
    assert sink.kinds("ack")[0]["To"] == SENDER  # acks still go to the proven sender
    assert len(mails) >= 2


def _outbox(app):  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return list(s.scalars(select(OutboxMail)))


class Hooks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Hooks.fail_first > 0:
            Hooks.fail_first -= 1
            self.send_response(503)
        else:
            Hooks.received.append((dict(self.headers), body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhooks_are_signed_and_retried(make_app, sink) -> None:
    server = HTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hooks.received, Hooks.fail_first = [], 1
    try:
        app = make_app()
        app.add_account()
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with app.store.tx() as s:
            accounts.update_account(s, SENDER, webhook_url=url, webhook_secret="s3cr3t")
        assert send(app.port, fax_message(f"{PASSWORD}:0170709901", make_pdf([["x"]])))
        wait_until(lambda: len(Hooks.received) == 2, 30, "two webhook events")
    finally:
        server.shutdown()
    events = {}
    for headers, body in Hooks.received:
        ts = headers["X-Mailgw-Timestamp"]
        expected = "sha256=" + hmac.new(b"s3cr3t", ts.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Mailgw-Signature"], expected)
        event = json.loads(body)
        events[event["event"]] = event
    assert events["delivery.final"]["delivery"]["state"] == "delivered"
    assert events["job.final"]["job"]["outcome"] == "delivered_all"
    with app.store.read() as s:
        tries = s.scalars(select(OutboxMail.tries).where(OutboxMail.kind == "webhook")).all()
        assert sorted(tries) == [0, 1]  # one was refused once (503) and sent on the retry


def test_operator_templates_win(make_app, sink, tmp_path: Path) -> None:
    own = tmp_path / "templates" / "en"
    own.mkdir(parents=True)
    (own / "notice.txt").write_text("{% block subject %}OURS {{ state_word }}{% endblock %}\n"
                                    "{% block body %}Custom body for {{ number }}{% endblock %}\n")
    app = make_app(notify={"templates_dir": str(tmp_path / "templates")})
    app.add_account()
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", make_pdf([["x"]])))
    notice = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                           what="notice")
    n = next(m for m in notice if m["X-Mailgw-Kind"] == "notice")
    assert n["Subject"] == "OURS Delivered"
    assert "Custom body for +33 1 70 70 99 01" in n.get_body(("plain",)).get_content()


def test_two_hundred_notices_through_a_smarthost_that_was_down(make_app, sink) -> None:
    port = sink.port
    sink.stop()
    app = make_app(notify={"summary_from": 0})  # a notice per number, however many
    app.add_account()
    numbers = ",".join(f"0170{i // 90:03d}{i % 90:03d}" for i in range(200))
    assert send(app.port, fax_message(f"{PASSWORD}:{numbers}", make_pdf([["x"]])))

    def all_final_waiting() -> bool:
        with app.store.read() as s:
            return s.scalar(select(func.count()).select_from(OutboxMail)
                            .where(OutboxMail.kind == "notice", OutboxMail.tries >= 1)) == 200

    wait_until(all_final_waiting, 120, "200 notices queued and refused once")
    back = Sink(port=port).start()
    try:
        back.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) >= 200,
                      120, "200 notices")
        wait_until(lambda: all(r.sent_at for r in _outbox(app)), 30, "all marked sent")
        notices = back.kinds("notice")
        assert len(notices) == 200
        assert len({m["Message-ID"] for m in notices}) == 200
        assert len({m["Subject"] for m in notices}) == 200
    finally:
        back.stop()


def test_preview_and_csv_report(tmp_path: Path) -> None:
    r = mailgw("notify", "preview", "--lang", "ru", "--state", "partial")
    assert r.returncode == 0 and "X-Mailgw-State: partial" in r.stdout
    assert "Доставлено частично" in r.stdout
    r = mailgw("notify", "preview", "--kind", "summary", "--lang", "fr", "--state", "failed")
    assert r.returncode == 0 and "Résultat" in r.stdout
    r = mailgw("notify", "preview", "--kind", "ack", "--html")
    assert r.returncode == 0 and "<!doctype html>" in r.stdout and "<table " in r.stdout


def test_big_jobs_get_a_progress_summary_and_a_final_one(make_app, sink) -> None:
    app = make_app(notify={"summary_from": 4, "progress_at_half": True})
    app.add_account()
    numbers = ",".join(f"01707099{i:02d}" for i in range(10, 16))
    assert send(app.port, fax_message(f"{PASSWORD}:{numbers}", make_pdf([["x"]])))
    mails = sink.wait_for(lambda ms: any(m.get("X-Mailgw-Outcome") == "Success" for m in ms),
                          what="the final summary")
    wait_until(lambda: all(r.sent_at for r in _outbox(app)), what="the outbox drained")
    kinds = [m["X-Mailgw-Kind"] for m in sink.messages]
    assert kinds.count("notice") == 0 and kinds.count("summary") == 2, kinds
    outcomes = [m["X-Mailgw-Outcome"] for m in sink.messages if m["X-Mailgw-Kind"] == "summary"]
    assert sorted(outcomes) == ["N/A", "Success"] and len(mails) >= 2



# -- the mail itself: pinned, so that a faster way of writing it cannot change it ---------------

NASTY = 'relance é ж\r\nBcc: evil@example.com\n<b>bold</b> & "quoted" =?utf-8?q?x?= \u2028end'
BOUNDARY = re.compile(rb"={15}\d{19}==(?:\.\d+)?")
NOTICE_HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                  "Auto-Submitted", "X-Mailgw-Loop", "X-Mailgw-Kind", "X-Mailgw-Job",
                  "X-Mailgw-State", "MIME-Version", "Content-Type"]


def _renderer(override_dir: str | None = None) -> Renderer:
    return Renderer(from_address="Passerelle fax <fax@gw.example.org>", domain="gw.example.org",
                    override_dir=override_dir)


def _notice(lang: str, channel: str = "fax", state: str = "partial",
            renderer: Renderer | None = None) -> tuple[Rendered, Any, Any]:
    account, job, delivery, attempts = _sample(state, channel, lang)
    job.comment = NASTY
    job.subject = f"•••:01 70 70 99 01:INV-7:{NASTY}"
    return notice_mail(renderer or _renderer(), job, delivery, attempts, account), job, delivery


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode() for line in head.split(b"\r\n")
            if not line[:1].isspace()]


def _well_formed(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # non-ASCII header text is RFC 2047-encoded
    bare = raw.replace(b"\r\n", b"")
    assert b"\r" not in bare and b"\n" not in bare  # CRLF only, never a bare CR or LF
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\r\nbcc:" not in head.lower()  # user text never makes a header of its own


@pytest.mark.parametrize("channel", ["fax", "voice"])
@pytest.mark.parametrize("lang", ["en", "fr", "ru"])
def test_a_notice_is_a_multipart_alternative_with_every_header(lang: str, channel: str) -> None:
    mail, job, delivery = _notice(lang, channel)
    raw = mail.data
    _well_formed(raw)
    assert _header_names(raw) == NOTICE_HEADERS
    msg = message_from_bytes(raw, policy=policy.default)
    assert not msg.defects
    assert msg["From"] == "Passerelle fax <fax@gw.example.org>"
    assert msg["To"] == "alice@example.com" and mail.to == "alice@example.com"
    assert msg["Message-ID"] == mail.message_id
    assert re.fullmatch(r"<[^<>@\s]+\.notice@gw\.example\.org>", mail.message_id)
    assert msg["In-Reply-To"] == msg["References"] == job.message_id
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Mailgw-Loop"] == "gw.example.org"
    assert msg["X-Mailgw-Kind"] == "notice"
    assert msg["X-Mailgw-Job"] == str(job.id)
    assert msg["X-Mailgw-State"] == delivery.state
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime is not None
    w = words(lang)
    subject = msg["Subject"]
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith(w["partial"]) and "+33 1 70 70 99 01" in subject
    assert subject.endswith(f" {job.id}")
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert not list(msg.iter_attachments())
    for part in parts:
        assert part.get_content_charset() == "utf-8" and not part.defects
        assert part["Content-Transfer-Encoding"] in ("7bit", "8bit", "quoted-printable",
                                                     "base64")
    text, html = parts[0].get_content(), parts[1].get_content()
    assert w["partial"] in text and w["partial"] in html
    assert "relance é ж" in text and "Bcc: evil@example.com" in text  # the body, as written
    assert "<b>bold</b>" not in html and '"quoted"' not in html  # autoescaped
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34;" in html
    assert html.lstrip().startswith("<!doctype html>")


def test_user_text_in_a_subject_stays_one_encoded_header(tmp_path: Path) -> None:
    own = tmp_path / "en"
    own.mkdir()
    (own / "notice.txt").write_text("{% block subject %}{{ comment }} – {{ original_subject }}"
                                    "{% endblock %}\n{% block body %}{{ comment }}\n"
                                    "{% endblock %}\n")
    mail, job, _ = _notice("en", renderer=_renderer(str(tmp_path)))
    _well_formed(mail.data)
    assert _header_names(mail.data) == NOTICE_HEADERS
    msg = message_from_bytes(mail.data, policy=policy.default)
    subject = msg["Subject"]
    assert subject.startswith('relance é ж Bcc: evil@example.com <b>bold</b> & "quoted" ')
    assert "– •••:01 70 70 99 01:INV-7:relance é ж Bcc:" in subject
    assert "\n" not in subject and "\u2028" not in subject and len(subject) <= 250
    assert "Bcc" not in msg and subject.count("Bcc: evil@example.com") == 2
    assert "=?utf-8?" in mail.data.split(b"\r\n\r\n", 1)[0].decode()  # encoded, not raw


def _same_bytes(headers: list[tuple[str, str]], text: str, html: str) -> None:
    ours = BOUNDARY.sub(b"BOUNDARY", compose(headers, text, html))
    stdlib = BOUNDARY.sub(b"BOUNDARY", compose_email(headers, text, html))
    assert ours == stdlib


@pytest.mark.parametrize("lang", ["en", "fr", "ru"])
def test_acks_and_notices_are_written_byte_for_byte_as_the_stdlib_writes_them(
        lang: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mime.compose` writes the mail directly; `compose_email` is the stdlib's
    EmailMessage(policy=SMTP). Same headers, folding, encodings and structure."""
    seen: list[tuple[list[tuple[str, str]], str, str]] = []

    def spy(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
        seen.append((list(headers), text, html))
        return compose(headers, text, html)

    monkeypatch.setattr(render, "compose", spy)
    for channel in ("fax", "voice"):
        for state in ("delivered", "partial", "failed", "expired", "cancelled"):
            _notice(lang, channel, state)
    ack_mail(_renderer(), AckFacts(
        code=80, to=SENDER, lang=lang, tz="Europe/Paris", channel="fax", received=utcnow(),
        original_subject=f"{PASSWORD}:0170709901:{NASTY}", original_message_id="<a@b.example>",
        job_ids=[42], numbers=["+33170709901"], pages=3, ref="INV-7", comment=NASTY))
    assert len(seen) == 11
    for headers, text, html in seen:
        _same_bytes(headers, text, html)


TRICKY_HEADERS = [
    "=?utf-8?q?x?=", "a =?utf-8?b?w6k=?= b", "=?", "?=", "x" * 66, "x" * 67, "x" * 68,
    "w " * 33 + "w", "(comment) \"quoted\" <angle> [square] back\\slash", "a;b,c:d@e",
    "é", "relance é ж", "–", "tab\there", "  lead and trail  ", "two  spaces", "",
    "<abc.def@gw.example.org>", "<" + "a" * 60 + "@gw.example.org>", "<a@[127.0.0.1]>"]


@pytest.mark.parametrize("value", TRICKY_HEADERS)
@pytest.mark.parametrize("name", ["Subject", "In-Reply-To", "X-Mailgw-Job", "Message-ID",
                                  "To"])
def test_header_folding_is_the_stdlib_folding(name: str, value: str) -> None:
    def outcome(fold: Any) -> Any:
        try:
            return fold(name, value)
        except Exception as exc:  # noqa: BLE001 - the same refusal is part of the contract
            return type(exc)

    assert outcome(mime.fold) == outcome(mime._stdlib_fold)


WORD_PIECES = ["é", "ж", "–", "•••", "日本語", "😀", "a", "word", "x" * 20, "x" * 77, "x" * 90,
               "Доставлено", "(3/5", "pages)", "+33", "1", "_", "=", "?", "?=", '"q"', "<b>",
               "é" * 30, "ж" * 50, "\u00a0", "\u3000"]
WORDS = st.lists(st.lists(st.sampled_from(WORD_PIECES), min_size=1, max_size=6).map("".join),
                 min_size=1, max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["Subject", "X-Mailgw-Outcome", "In-Reply-To"]), value=WORDS)
def test_encoded_words_are_folded_as_the_stdlib_folds_them(name: str, value: str) -> None:
    """Subjects in fr/ru/en (and user text) take `mime._fold_words`, not the stdlib."""
    for text in (value, header_text(value, 250)):
        assert mime.fold(name, text) == mime._stdlib_fold(name, text)


@pytest.mark.parametrize("job_id", [1, 42, 12345, 10**9])
@pytest.mark.parametrize("template", [
    "Partially delivered: fax to +33 1 70 70 99 01 (3/5 pages) – job {}",
    "Доставлено частично: факс на +33 1 70 70 99 01 (3/5 стр.) – задание {}",
    "Partiellement remis : message vocal vers +33 1 70 70 99 01 – travail {}",
    "[80] Fax accepté (travail {}) – •••:0170709901:INV-7:relance é"])
def test_subjects_are_folded_as_the_stdlib_folds_them(template: str, job_id: int) -> None:
    subject = template.format(job_id)
    assert mime.fold("Subject", subject) == mime._stdlib_fold("Subject", subject)


BASE_HEADERS = [("From", "fax@gw.example.org"), ("To", "alice@example.com"),
                ("Subject", "Delivered"), ("Date", "Sat, 05 Dec 2026 17:20:31 +0000"),
                ("Message-ID", "<1.2.3.notice@gw.example.org>")]
HEADER_TEXT = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from([*"ab =?()<>@\",;:\\.[]\t", "é", "–", "ж", "x" * 30, "word ",
                              "=?utf-8?q?x?=", "<a@b.c>"]), max_size=30).map("".join),
    st.from_regex(r"[!-~]{1,30}( [!-~]{1,20}){0,5}", fullmatch=True))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=3000), html=st.text(max_size=3000),
       name=st.sampled_from(["Subject", "In-Reply-To", "X-Mailgw-Job", "X-Mailgw-State"]),
       value=HEADER_TEXT)
def test_the_composer_matches_the_stdlib_on_any_text(text: str, html: str, name: str,
                                                     value: str) -> None:
    text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    html = html.encode("utf-8", "replace").decode("utf-8")
    headers = [(n, v) for n, v in BASE_HEADERS if n != name]
    _same_bytes([*headers, (name, header_text(value, 400))], text, html)


# -- the sender keeps one session, and notices when the smarthost dropped it -----------------

class CountingHandler(SinkHandler):
    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses


def test_the_sender_reuses_its_session_and_reconnects_after_a_drop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    port = free_port()
    store = Store(url)
    store.upgrade()
    sender = OutboxSender(store, make_settings(url, port).notify, owner="test")

    def queue(start: int, n: int) -> None:
        with store.tx() as s:
            for i in range(start, start + n):
                enqueue(s, Rendered("notice", "alice@example.com", f"<n{i}@gw.example.org>",
                                    f"Subject: n\r\n\r\nmail {i}\r\n".encode()),
                        return_path="")

    async def drain() -> int:
        total = 0
        while sent := await sender.send_due(limit=50):
            total += sent
        return total

    first, second = CountingHandler(), CountingHandler()
    loop = asyncio.new_event_loop()
    try:
        controller = Controller(first, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            queue(0, 120)
            assert loop.run_until_complete(drain()) == 120  # three batches, one session
        finally:
            controller.stop()  # the smarthost restarts: the open session is dead
        controller = Controller(second, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            queue(120, 5)
            assert loop.run_until_complete(drain()) == 5  # a new session, no failed try
            loop.run_until_complete(sender.close())
        finally:
            controller.stop()
    finally:
        loop.close()
        store.dispose()
    assert first.sessions == 1 and len(first.mails) == 120
    assert second.sessions == 1 and len(second.mails) == 5
    store = Store(url)
    with store.read() as s:
        rows = list(s.scalars(select(OutboxMail)))
    store.dispose()
    assert len(rows) == 125 and all(r.sent_at and r.tries == 0 for r in rows)
    assert len({m for _, _, m in first.mails + second.mails}) == 125  # each sent once



def test_durations_and_retry_counts_read_naturally_in_each_language() -> None:
    ru = mailgw("notify", "preview", "--lang", "ru", "--state", "partial")
    assert ru.returncode == 0 and "Длительность: 3 мин 10 с" in ru.stdout, ru.stdout
    en = mailgw("notify", "preview", "--lang", "en", "--state", "failed")
    assert "Retried once." in en.stdout and "1 times" not in en.stdout, en.stdout
    fr = mailgw("notify", "preview", "--lang", "fr", "--state", "failed")
    assert "Durée : 3 min 10 s" in fr.stdout, fr.stdout


@pytest.mark.parametrize("lang, label", [("en", "Duration"), ("fr", "Durée"),
                                         ("ru", "Длительность")])
def test_a_call_under_half_a_second_has_no_duration_line(lang: str, label: str) -> None:
    """The demo's simulator at 1/50 speed: a 12 s voice call took 0.24 s; "0 s" would
    puzzle the reader, so the line is left out (text and HTML), and 1.5 s reads "2 s"."""
    for seconds, shown in ((0.12, None), (1.5, "2")):
        account, job, delivery, attempts = _sample("delivered", "fax", lang)
        for a in attempts:
            a.duration = seconds / 2
        raw = notice_mail(_renderer(), job, delivery, attempts, account).data
        msg = message_from_bytes(raw, policy=policy.default)
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        if shown is None:
            assert label not in text and label not in html, text
        else:
            assert re.search(rf"^{label} ?: {shown} ", text, re.M), text
            assert re.search(rf">{label}</th>\s*<td[^>]*>{shown} ", html), html
