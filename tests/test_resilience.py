"""Break things (the smarthost, a worker, our own code) and show nothing is lost or doubled."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailgw import config
from mailgw.app import prepare_store
from mailgw.dispatch import queries
from mailgw.store import Attempt, Delivery, Job, OutboxMail
from tests.conftest import PASSWORD, Sink, fax_message, free_port, wait_until
from tests.test_cli import mailgw
from tests.test_end_to_end import send


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
        with app.store.read() as s:
            rows = s.scalars(select(OutboxMail)).all()
            assert all(r.sent_at is not None and r.dead_at is None for r in rows)
        assert len({m["Message-ID"] for m in back.messages}) == 2
    finally:
        back.stop()


def test_reaper_returns_expired_leases(tmp_path: Path, corpus: Path) -> None:
    settings = config.load(search=False, environ={}, overrides={
        "store": {"url": f"sqlite:///{tmp_path / 'r.db'}"}})
    store = prepare_store(settings)
    from mailgw import accounts

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
    (c,) = queries.claim(store, "w1", 5, lease_seconds=0.05)
    assert queries.claim(store, "w2", 5, lease_seconds=60) == []  # held
    wait_until(lambda: queries.reap(store) == 1, 5, "the lease to expire and be reaped")
    (c2,) = queries.claim(store, "w2", 5, lease_seconds=60)
    # the same call again, under the same key: a driver adopts the one already on the line
    assert c2.delivery_id == c.delivery_id and c2.attempt == c.attempt == 1
    assert c2.idempotency_key == c.idempotency_key
    assert queries.heartbeat(store, "w1", [c.delivery_id], 60) == (0, [])  # w1 lost it
    assert queries.heartbeat(store, "w2", [c.delivery_id], 60) == (1, [])
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
        assert "leases_reaped" in log2.read_text()
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
