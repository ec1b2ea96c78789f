"""Break things (the smarthost, a worker, our own code) and show nothing is lost or doubled."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw.app import prepare_store
from mailgw.ops import config
from mailgw.store import Attempt, Delivery, Job, OutboxMail
from mailgw.store import dispatch as leases
from tests.conftest import PASSWORD, Sink, fax_message, free_port, wait_until
from tests.integration.test_cli import mailgw
from tests.integration.test_end_to_end import send


def test_dead_smarthost_loses_nothing(make_app, sink, corpus: Path) -> None:
    """The smarthost is down when the ack and notice are due; they go out once it is back."""
    port = sink.port
    sink.stop()  # nobody listens on the smarthost port now
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf)).startswith("250")

    def failed_tries() -> bool:
        with app.store.read() as s:
            rows = s.scalars(select(OutboxMail)).all()
            return len(rows) == 2 and all(r.tries >= 1 and r.sent_at is None for r in rows)

    wait_until(failed_tries, 20, "two outbox rows that failed at least once")
    with app.store.read() as s:
        assert all("refused" in (r.last_error or "").lower() or r.last_error
                   for r in s.scalars(select(OutboxMail)))
    back = Sink(port=port).start()
    try:
        # up to one back-off (at most 60 s in the first hour) after the sink is back
        back.wait_for(lambda ms: len(ms) >= 2, 90, "ack and notice after the smarthost returns")
        kinds = sorted(m["X-Mailgw-Kind"] for m in back.messages)
        assert kinds == ["ack", "notice"]

        def all_marked() -> bool:  # the batch is marked sent once the smarthost took it all
            with app.store.read() as s:
                rows = s.scalars(select(OutboxMail)).all()
                return all(r.sent_at is not None and r.dead_at is None for r in rows)

        wait_until(all_marked, 10, "the sent marks")
        assert len({m["Message-ID"] for m in back.messages}) == 2
        assert len(back.messages) == 2  # nothing sent twice
    finally:
        back.stop()


def test_reaper_returns_expired_leases(tmp_path: Path, corpus: Path) -> None:
    settings = config.load(search=False, environ={}, overrides={
        "store": {"url": f"sqlite:///{tmp_path / 'r.db'}"}})
    store = prepare_store(settings)
    from mailgw.accounts import accounts

    with store.tx() as s:
        acc = accounts.add_account(s, "a@example.com", "pw", region="FR", lang="fr",
                                   tz="Europe/Paris", credits=None)
        job = Job(account_id=acc.id, channel="fax", sender="a@example.com", state="active",
                  outcome="in_progress")
        s.add(job)
        s.flush()
        from mailgw.store import utcnow

        s.add(Delivery(job_id=job.id, number="+33170709901", state="queued",
                       next_attempt_at=utcnow(), attempts=0, pages_sent=0, pages_total=1))
    (c,) = leases.claim(store, "w1", 5, lease_seconds=0.05)
    assert leases.claim(store, "w2", 5, lease_seconds=60) == []  # held
    wait_until(lambda: leases.reap(store) == 1, 5, "the lease to expire and be reaped")
    (c2,) = leases.claim(store, "w2", 5, lease_seconds=60)
    # the same call again, under the same key: a driver adopts the one already on the line
    assert c2.delivery_id == c.delivery_id and c2.attempt == c.attempt == 1
    assert c2.idempotency_key == c.idempotency_key
    assert leases.heartbeat(store, "w1", [c.delivery_id], 60) == (0, [])  # w1 lost it
    assert leases.heartbeat(store, "w2", [c.delivery_id], 60) == (1, [])
    store.dispose()


def test_killed_daemon_mid_call_delivers_once_after_restart(tmp_path: Path, corpus: Path
                                                            ) -> None:
    """SIGKILL `mailgw serve` during a (slow) call; a new process finishes the job once."""
    sink = Sink().start()
    port = free_port()
    cfg = tmp_path / "kill.toml"
    cfg.write_text(f'''
[gateway]
fax_address = "fax@gw.example.org"
domain = "gw.example.org"
[smtp]
listen = "127.0.0.1:{port}"
[store]
url = "sqlite:///{tmp_path / 'kill.db'}"
[notify]
smarthost = "127.0.0.1:{sink.port}"
poll_interval = "100ms"
smtp_timeout = "3s"
[dispatch]
poll_interval = "100ms"
lease_seconds = "1s"
[drivers.simulator]
time_scale = 0.05
[log]
format = "json"
''')
    assert mailgw("account", "add", "alice@example.com", "--password-stdin", "--config",
                  str(cfg), stdin=PASSWORD + "\n").returncode == 0
    log1 = tmp_path / "first.log"

    def start(log: Path) -> subprocess.Popen[str]:
        with open(log, "w") as f:
            return subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config",
                                     str(cfg)], stdout=f, stderr=subprocess.STDOUT, text=True)

    first = start(log1)
    second = None
    try:
        wait_until(lambda: '"event": "ready"' in log1.read_text(), 30, "ready")
        pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
        # 98 = slow: about 45 s of simulated call x 10 x 0.05 = ~22 s of real time
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(fax_message(f"{PASSWORD}:0170709998", pdf))
        wait_until(lambda: '"event": "call_started"' in log1.read_text(), 30, "call started")
        settings = config.load(cfg, environ={})
        store = prepare_store(settings, migrate=False)

        def ack_sent() -> bool:
            with store.read() as s:
                return bool(s.scalar(select(OutboxMail.sent_at).where(OutboxMail.kind == "ack")))

        wait_until(ack_sent, 30, "the ack to be sent and marked")  # so the kill hits the call
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        with store.read() as s:
            d = s.scalar(select(Delivery))
            assert d is not None and d.state == "sending"  # held by the dead process
        settings2 = tmp_path / "second.toml"
        settings2.write_text(cfg.read_text().replace("time_scale = 0.05", "time_scale = 0.001"))
        log2 = tmp_path / "second.log"
        with open(log2, "w") as f:
            second = subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--config",
                                       str(settings2)], stdout=f, stderr=subprocess.STDOUT)
        sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 60,
                      "the notice after restart")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        with store.read() as s:
            d = s.scalar(select(Delivery))
            # the reaped call is placed again as the same attempt (same idempotency key)
            assert d is not None and d.state == "delivered" and d.attempts == 1
            assert s.scalar(select(func.count()).select_from(Attempt)) == 1
        assert len(sink.kinds("notice")) == 1 and len(sink.kinds("ack")) == 1
        # handed back at start-up (its holder, on this host, is dead), not after its lease
        released = [json.loads(line) for line in log2.read_text().splitlines()
                    if '"dead_leases_released"' in line]
        assert [(e["deliveries"], e["outbox"]) for e in released] == [(1, 0)]
        store.dispose()
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
        sink.stop()


def test_our_own_failure_answers_451_without_a_traceback(make_app, sink, corpus: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    app = make_app()
    app.add_account()
    assert app.app is not None and app.app.intake is not None

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app.app.intake, "handle", boom)
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    with pytest.raises(smtplib.SMTPDataError) as err:
        send(app.port, fax_message(f"{PASSWORD}:0170709901", pdf))
    assert err.value.smtp_code == 451 and b"4.3.0" in err.value.smtp_error
    assert b"secret" not in err.value.smtp_error
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_connection_dropped_during_data_makes_no_job(make_app, corpus: Path) -> None:
    import socket

    app = make_app()
    app.add_account()
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        for line in (b"EHLO x\r\n", b"MAIL FROM:<alice@example.com>\r\n",
                     b"RCPT TO:<fax@gw.example.org>\r\n", b"DATA\r\n"):
            f.write(line)
            f.flush()
            while True:
                reply = f.readline()
                if reply[3:4] != b"-":
                    break
        f.write(f"From: alice@example.com\r\nSubject: {PASSWORD}:0170709901\r\n\r\nhalf".encode())
        f.flush()
    # the next session still works, and no job was made from the half mail
    with smtplib.SMTP("127.0.0.1", app.port, timeout=10) as client:
        assert client.noop()[0] == 250
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


# -- group commit: concurrent sessions share a transaction --------------------------------

def _send_all(port: int, msgs: list) -> list[str]:  # type: ignore[type-arg]
    """Send each mail from its own thread and SMTP session, all at once; each reply (a
    refusal or our own failure reads `CODE text`)."""
    import threading

    replies: list[str] = [""] * len(msgs)
    start = threading.Barrier(len(msgs))

    def one(i: int) -> None:
        start.wait()
        try:
            replies[i] = send(port, msgs[i])
        except smtplib.SMTPDataError as exc:
            replies[i] = f"{exc.smtp_code} {exc.smtp_error.decode()}"
        except Exception as exc:  # noqa: BLE001 - shown in the assertion
            replies[i] = repr(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(msgs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


def _in_one_batch(app, opener, group: list) -> tuple[str, list[str], list[int]]:  # type: ignore[no-untyped-def, type-arg]
    """Send `opener`, hold the committer on it, send `group` and let the committer go once
    all of the group waits: the group is committed as one batch (conditions with deadlines,
    no timing). The opener's reply, the group's replies, the batch sizes."""
    import threading

    committer = app.app.intake.committer
    original = committer.commit
    sizes: list[int] = []
    holding = threading.Event()

    def commit(items):  # type: ignore[no-untyped-def]
        if not sizes:
            holding.set()
            wait_until(lambda: len(committer.waiting) >= len(group), what="the group waiting")
        sizes.append(len(items))
        return original(items)

    committer.commit = commit
    first: list[str] = []
    opener_thread = threading.Thread(target=lambda: first.append(send(app.port, opener)))
    opener_thread.start()
    wait_until(holding.is_set, what="the committer holding the opener")
    replies = _send_all(app.port, group)
    opener_thread.join(60)
    return first[0], replies, sizes


def _counts(app) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    from mailgw.store import ProcessedMessage

    with app.store.read() as s:
        return (s.scalar(select(func.count()).select_from(Job)) or 0,
                s.scalar(select(func.count()).select_from(ProcessedMessage)) or 0,
                s.scalar(select(func.count()).select_from(OutboxMail)
                         .where(OutboxMail.kind == "ack")) or 0)


def test_group_commit_30_parallel_sessions_one_job_per_mail(make_app, sink,
                                                             corpus: Path) -> None:
    """30 sessions at once, 10 of them repeating another's Message-ID: one job, one
    idempotency row and one ack per distinct mail; every copy gets the first answer. (One
    client address: the per-client connection cap, 20, is lifted for it here.)"""
    app = make_app(smtp={"client_limit_exceptions": ["127.0.0.1"]})
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    distinct = [fax_message(f"{PASSWORD}:01707099{i:02d}", pdf) for i in range(20)]
    replies = _send_all(app.port, distinct + distinct[:10])
    assert all(r.startswith("250 2.0.0 [80]") for r in replies), replies
    assert replies[20:] == replies[:10]  # a copy is answered exactly as the first
    assert len(set(replies[:20])) == 20  # each distinct mail has its own job
    assert _counts(app) == (20, 20, 20)


def test_two_copies_inside_one_batch_make_one_job(make_app, sink, corpus: Path) -> None:
    app = make_app()
    app.add_account()
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    same = fax_message(f"{PASSWORD}:0170709902", pdf)
    first, replies, sizes = _in_one_batch(
        app, fax_message(f"{PASSWORD}:0170709901", pdf),
        [same, same, fax_message(f"{PASSWORD}:0170709903", pdf)])
    assert sizes[:2] == [1, 3]  # the opener, then both copies and the other mail together
    assert all(r.startswith("250 2.0.0 [80]") for r in [first, *replies]), replies
    assert replies[0] == replies[1] and replies[2] != replies[0]
    assert _counts(app) == (3, 3, 3)


def test_one_failing_mail_does_not_fail_its_batch(make_app, sink, corpus: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A mail whose insert fails gets 451 (the sender retries); the others of its batch are
    committed one by one and get their 250."""
    from mailgw.intake.writer import Writer

    app = make_app()
    app.add_account()
    new_job = Writer._new_job

    def failing(self, w, d, cmd, now, **kw):  # type: ignore[no-untyped-def]
        if cmd.comment == "boom":
            raise RuntimeError("insert failed")
        return new_job(self, w, d, cmd, now, **kw)

    monkeypatch.setattr(Writer, "_new_job", failing)
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    boom = fax_message(f"{PASSWORD}:0170709902::boom", pdf)
    first, replies, sizes = _in_one_batch(
        app, fax_message(f"{PASSWORD}:0170709901::first", pdf),
        [boom, fax_message(f"{PASSWORD}:0170709903::ok", pdf),
         fax_message(f"{PASSWORD}:0170709904::ok too", pdf)])
    assert sizes[:2] == [1, 3] and sizes[2:] == [1, 1, 1]  # the batch failed, then one by one
    assert replies[0].startswith("451 4.3.0"), replies
    assert "insert failed" not in replies[0]
    assert all(r.startswith("250 2.0.0 [80]") for r in [first, *replies[1:]]), replies
    assert _counts(app) == (3, 3, 3)
    # the sender's retry of the failed mail goes through once the fault is gone
    monkeypatch.setattr(Writer, "_new_job", new_job)
    assert send(app.port, boom).startswith("250 2.0.0 [80]")
    assert _counts(app) == (4, 4, 4)


def test_credits_of_one_account_never_go_negative_under_concurrency(make_app, sink,
                                                                     corpus: Path) -> None:
    from mailgw.store import Account

    app = make_app()
    app.add_account(credits=8)
    pdf = (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()
    # the opener, then three mails of the account in one batch, then eight more at once
    first, replies, sizes = _in_one_batch(
        app, fax_message(f"{PASSWORD}:0170709900", pdf),
        [fax_message(f"{PASSWORD}:01707099{i:02d}", pdf) for i in range(1, 4)])
    replies += [first, *_send_all(app.port, [fax_message(f"{PASSWORD}:01707099{i:02d}", pdf)
                                             for i in range(4, 12)])]
    accepted = [r for r in replies if r.startswith("250 2.0.0 [80]")]
    refused = [r for r in replies if "[83]" in r]
    assert len(accepted) == 8 and len(refused) == 4, replies
    with app.store.read() as s:
        account = s.scalar(select(Account))
        assert account is not None and account.credits == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 8
    assert sizes[:2] == [1, 3]
