"""`mailgw db purge`: documents first, then finished jobs and old mail records; nothing in
flight is touched, and a purged fax cannot be retried by mistake."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from mailgw.documents.samples import make_pdf
from mailgw.ops import retention
from mailgw.store import Attempt, Delivery, Job, OutboxMail, ProcessedMessage, utcnow
from tests.conftest import PASSWORD, fax_message
from tests.integration.test_cli import mailgw
from tests.integration.test_end_to_end import send


def count(app, model, *where) -> int:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_purge_drops_documents_then_records_and_leaves_work_in_flight(
        make_app, sink, tmp_path: Path) -> None:
    app = make_app(dispatch={"retry": {"max_attempts": 1}})
    app.add_account()
    pdf = make_pdf([["a"], ["b"]])
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf))  # delivered
    assert send(app.port, fax_message(f"{PASSWORD}:0170709994", pdf))  # busy: failed
    when = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).strftime("%H%M%d%m%Y")
    assert send(app.port, fax_message(f"{PASSWORD}:0170709902:LATER::{when}", pdf))  # waits
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) == 2, 30,
                  "the two notices")
    with app.store.read() as s:
        failed_job = s.scalar(select(Delivery.job_id).where(Delivery.number == "+33170709994"))
    assert count(app, Job) == 3 and count(app, OutboxMail) == 5  # 3 acks, 2 notices
    # an outbox mail the smarthost has not taken yet, for a finished job: it must survive
    with app.store.tx() as s:
        s.add(OutboxMail(job_id=failed_job, kind="notice", mail_from="",
                         rcpt_to="alice@example.com", body=b"Subject: late\r\n\r\nx\r\n",
                         message_id="<late@gw.example.org>", tries=3,
                         next_attempt_at=utcnow() + timedelta(days=1)))  # in back-off

    later = utcnow() + timedelta(days=10)  # documents (7 d) are due, records (90 d) are not
    dry = retention.purge(app.store, 90, 7, dry_run=True, now=later)
    assert (dry.documents, dry.jobs) == (2, 0)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).where(Job.document.is_not(None))) == 3  # dry run
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[store]\nurl = "{app.settings.store.url}"\n')
    done = retention.purge(app.store, 90, 7, now=later)
    assert (done.documents, done.jobs) == (2, 0)
    with app.store.read() as s:
        kept = s.scalars(select(Job.state).where(Job.document.is_not(None))).all()
    assert kept == ["scheduled"]  # the deferred fax keeps its PDF
    r = mailgw("jobs", "retry", str(failed_job), "--config", str(cfg))
    assert r.returncode == 1 and "purged" in r.stderr, r.stderr

    much_later = utcnow() + timedelta(days=100)
    report = retention.purge(app.store, 90, 7, now=much_later)
    assert (report.jobs, report.deliveries, report.attempts) == (2, 2, 2)
    # the finished jobs' 2 acks + 2 notices, then the deferred job's sent ack (old enough);
    # the idempotency keys of the 3 mails
    assert report.outbox == 5 and report.processed == 3
    with app.store.read() as s:
        assert s.scalars(select(Job.state)).all() == ["scheduled"]
        assert s.scalar(select(func.count()).select_from(Attempt)) == 0
        late = s.scalar(select(OutboxMail).where(OutboxMail.message_id == "<late@gw.example.org>"))
        assert late is not None and late.sent_at is None and late.job_id is None
        assert s.scalars(select(OutboxMail.message_id)).all() == ["<late@gw.example.org>"]
    assert count(app, ProcessedMessage) == 0 and count(app, Delivery) == 1


def test_purge_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n')
    r = mailgw("db", "purge", "--dry-run", "--config", str(cfg))
    assert r.returncode == 0 and "would purge: 0 jobs" in r.stdout, r.stdout + r.stderr
    bad = mailgw("db", "purge", "--older-than", "0d", "--config", str(cfg))
    assert bad.returncode == 2 and "positive" in bad.stderr
    assert mailgw("db", "purge", "--older-than", "soon", "--config", str(cfg)).returncode == 2
