"""Notifications: summary with its CSV, failures only, notice address, webhooks (signed,
retried), operator templates, preview, and 200 notices through a smarthost that was down."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw import accounts
from mailgw.samples import make_pdf
from mailgw.store import OutboxMail
from tests.conftest import PASSWORD, SENDER, Sink, fax_message, wait_until
from tests.test_cli import mailgw
from tests.test_end_to_end import send


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
    app = make_app()
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
    assert r.returncode == 0 and "<table>" in r.stdout


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
