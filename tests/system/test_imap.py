"""IMAP intake against a real, private Dovecot: mail in, job made once, mail moved after commit."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import func, select

from mailgw.app import prepare_store
from mailgw.imap.mailbox import MailboxPoller
from mailgw.ops import config
from mailgw.store import Job, OutboxMail, ProcessedMessage, Store
from tests.conftest import (
    PASSWORD,
    SENDER,
    RunningApp,
    Sink,
    fax_message,
    make_settings,
    need,
    wait_until,
)
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, Dovecot, dovecot, dovecot_or_skip
from tests.integration.test_cli import mailgw

__all__ = ["dovecot"]  # the fixture, imported for pytest

ROLES = ("imap", "dispatch", "notify")


def box(server: Dovecot, **kw: Any) -> dict[str, Any]:
    """One [[imap.mailboxes]] table for the private server (plain IMAP: loopback only)."""
    return {"host": "127.0.0.1", "port": server.port, "tls": "none", "user": MAIL_USER,
            "password": MAIL_PASSWORD, "timeout": "5s", "poll_interval": "300ms", **kw}


def crlf(raw: bytes) -> bytes:
    """IMAP stores and returns lines ending in CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def count(store: Store, model: Any, *where: Any) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class Logs:
    """structlog events seen while the app runs in its thread."""

    def __init__(self, entries: list[dict[str, Any]]):
        self.entries = entries

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.entries) if e.get("event") == name]


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as entries:
        yield Logs(entries)


@pytest.fixture
def pdf(corpus: Path) -> bytes:
    return (corpus / "pdfs" / "one-page-crazyones.pdf").read_bytes()


@pytest.fixture
def imap_app(sink: Sink, tmp_path: Path) -> Iterator[Callable[..., RunningApp]]:
    """Start the app (imap, dispatch, notify) in a thread, with the account already there."""
    started: list[RunningApp] = []

    def factory(*boxes: dict[str, Any], url: str | None = None,
                roles: tuple[str, ...] = ROLES, **sections: Any) -> RunningApp:
        settings = make_settings(url or f"sqlite:///{tmp_path / 'imap.db'}", sink.port,
                                 imap={"mailboxes": list(boxes)}, **sections)
        app = RunningApp(settings, roles)
        app.add_account()
        started.append(app)
        return app.start()

    yield factory
    for app in started:
        if app.thread.is_alive():
            app.stop()


def stop(app: RunningApp) -> None:
    app.stop()


def test_fax_mail_becomes_one_job_moves_to_done_and_is_acked(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], sink: Sink, store_url: str,
        pdf: bytes, logs: Logs) -> None:
    """Three mailboxes; two fail (a folder that does not exist; STARTTLS asked of a server
    that offers none) and must not stop the third, which turns a fax mail into one job,
    moves it to Done and gets the ack sent."""
    app = imap_app(box(dovecot, mailbox="Missing"), box(dovecot, tls="starttls"),
                   box(dovecot), url=store_url)
    msg = fax_message(f"{PASSWORD}:0170709901", pdf)
    dovecot.append(msg.as_bytes())
    wait_until(lambda: dovecot.count("Done") == 1, 30, "the mail to move to Done")
    assert dovecot.count("INBOX") == 0 and dovecot.count("Rejected") == 0
    assert count(app.store, Job) == 1
    with app.store.read() as s:
        job = s.scalars(select(Job)).one()
        assert job.message_id == msg["Message-ID"] and job.channel == "fax"
    acks = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "ack" for m in ms), 30, "ack")
    ack = next(m for m in acks if m["X-Mailgw-Kind"] == "ack")
    assert ack["X-Mailgw-Code"] == "80" and ack["To"] == SENDER
    reasons = [e["reason"] for e in logs.events("imap_error")]
    assert any("SELECT Missing refused" in r for r in reasons)
    assert any("does not offer STARTTLS" in r for r in reasons)
    assert all(MAIL_PASSWORD not in repr(e) for e in logs.entries)


def test_unproven_bounce_and_oversize_mail_are_moved_aside_unanswered(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], sink: Sink, pdf: bytes,
        logs: Logs, corpus: Path) -> None:
    """Wrong password and no sender → Rejected; a bounce → Done; a mail over
    smtp.max_message_size → Rejected without being fetched. No job, nothing answered."""
    limit = 100_000
    app = imap_app(box(dovecot), smtp={"listen": "127.0.0.1:0", "max_message_size": limit})
    wrong = fax_message("WRONG1:0170709901", pdf)
    nobody = fax_message(f"{PASSWORD}:0170709901", pdf)
    del nobody["From"]
    big = fax_message(f"{PASSWORD}:0170709902", pdf)
    big.add_attachment(os.urandom(3 * limit // 4 * 2), maintype="application",
                       subtype="octet-stream", filename="padding.bin")
    big_bytes = crlf(big.as_bytes())  # as IMAP stores it (imaplib sends CRLF)
    assert len(big_bytes) > 2 * limit
    bounce = crlf((corpus / "emails" / "73-bounce-exim.eml").read_bytes())
    dovecot.append_many([wrong.as_bytes(), nobody.as_bytes(), big_bytes, bounce])
    wait_until(lambda: dovecot.count("INBOX") == 0, 30, "the INBOX to be emptied")
    assert dovecot.count("Rejected") == 3 and dovecot.count("Done") == 1
    assert [m for m in dovecot.messages("Done")] == [bounce]
    assert count(app.store, Job) == 0
    assert count(app.store, OutboxMail) == 0  # an answer would be committed before the move
    assert count(app.store, ProcessedMessage) == 0
    (too_large,) = logs.events("imap_message_too_large")
    assert too_large["size"] == len(big_bytes) and too_large["limit"] == limit
    assert {e["to"] for e in logs.events("imap_message")} == {"Rejected", "Done"}
    app.stop()  # the session logs out: Dovecot then logs what it sent
    assert not sink.messages
    body_bytes = [int(x) for x in
                  re.findall(r"body_bytes=(\d+)", dovecot.log())]
    assert body_bytes and sum(body_bytes) < limit, "the big mail was never fetched"


def test_uidvalidity_change_makes_no_second_job(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], sink: Sink, pdf: bytes,
        logs: Logs) -> None:
    """The folder is deleted and made again (new UIDVALIDITY) with the same mail in it:
    mailgw reads it again, intake knows it (Message-ID): one job, one ack, moved again."""
    with dovecot.client() as c:
        assert c.create("Fax")[0] == "OK"
        c.logout()
    app = imap_app(box(dovecot, mailbox="Fax"))
    raw = fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes()
    dovecot.append(raw, "Fax")
    wait_until(lambda: dovecot.count("Done") == 1, 30, "the first reading")
    with dovecot.client() as c:
        assert c.delete("Fax")[0] == "OK" and c.create("Fax")[0] == "OK"
        c.logout()
    dovecot.append(raw, "Fax")
    wait_until(lambda: dovecot.count("Done") == 2, 30, "the second reading")
    assert dovecot.count("Fax") == 0
    assert count(app.store, Job) == 1
    assert count(app.store, OutboxMail, OutboxMail.kind == "ack") == 1
    first, second = logs.events("imap_message")
    assert first["uidvalidity"] != second["uidvalidity"]
    assert second["duplicate"] and second["job_ids"] == first["job_ids"]
    assert logs.events("imap_uidvalidity_changed")


def test_server_without_idle_or_move_is_polled_and_copied(
        imap_app: Callable[..., RunningApp], pdf: bytes, logs: Logs) -> None:
    """No IDLE: poll every poll_interval. No MOVE: UID COPY + \\Deleted + UID EXPUNGE."""
    dovecot_or_skip()
    server = Dovecot(capability="IMAP4rev1 LITERAL+ SASL-IR ID ENABLE UIDPLUS").start()
    try:
        app = imap_app(box(server))
        wait_until(lambda: logs.events("imap_connected"), 30, "the poller to connect")
        (connected,) = logs.events("imap_connected")
        assert connected["idle"] is False and connected["move"] is False
        server.append(fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes())
        wait_until(lambda: server.count("Done") == 1, 30, "the mail to be copied to Done")
        wait_until(lambda: server.total("INBOX") == 0, 10, "the original to be expunged")
        assert count(app.store, Job) == 1
        assert not logs.events("imap_idle")
    finally:
        server.cleanup()


def test_our_own_failure_leaves_the_mail_and_retries(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], pdf: bytes, logs: Logs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception in intake (ours) never moves the mail; it is tried again with back-off."""
    monkeypatch.setattr(MailboxPoller, "RETRY_FIRST", 0.2)
    app = imap_app(box(dovecot))
    assert app.app is not None and app.app.intake is not None
    intake = app.app.intake
    real = intake.handle
    broken = True

    def handle(raw: bytes, env: Any) -> Any:
        if broken:
            raise RuntimeError("store is down")
        return real(raw, env)

    monkeypatch.setattr(intake, "handle", handle)
    dovecot.append(fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes())
    wait_until(lambda: len(logs.events("imap_intake_failed")) >= 3, 30, "three failures")
    assert dovecot.count("INBOX") == 1 and dovecot.count("Done") == 0
    delays = [e["retry_in"] for e in logs.events("imap_intake_failed")]
    assert delays[2] > delays[0], "back-off grows"
    broken = False
    wait_until(lambda: dovecot.count("Done") == 1, 30, "the mail to go through once fixed")
    assert count(app.store, Job) == 1 and dovecot.count("INBOX") == 0


def test_hundred_mails_waiting_are_each_processed_once(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], pdf: bytes, logs: Logs) -> None:
    """100 mails arrive while mailgw is stopped; once it starts, 100 jobs, INBOX empty."""
    n = 100
    mails = [fax_message(f"{PASSWORD}:01707099{i % 90:02d}", pdf).as_bytes() for i in range(n)]
    dovecot.append_many(mails)
    assert dovecot.count("INBOX") == n
    app = imap_app(box(dovecot), roles=("imap",))
    started = time.monotonic()
    wait_until(lambda: dovecot.count("Done") == n, 300, "all 100 mails in Done")
    print(f"IMAP: {n} waiting mails -> {n} jobs in {time.monotonic() - started:.1f} s")
    assert dovecot.count("INBOX") == 0 and dovecot.count("Rejected") == 0
    assert count(app.store, Job) == n and count(app.store, ProcessedMessage) == n
    seen = logs.events("imap_message")
    assert len(seen) == n and not any(e["duplicate"] for e in seen)
    assert len({e["uid"] for e in seen}) == n


def _last_imap_event(logs: Logs) -> str:
    names = [e["event"] for e in list(logs.entries) if e["event"].startswith("imap_")]
    return names[-1] if names else ""


def test_dovecot_killed_during_idle_reconnects_and_reads_what_came_meanwhile(
        dovecot: Dovecot, imap_app: Callable[..., RunningApp], pdf: bytes, logs: Logs) -> None:
    app = imap_app(box(dovecot), roles=("imap",))
    dovecot.append(fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes())
    wait_until(lambda: dovecot.count("Done") == 1, 30, "the first mail")
    wait_until(lambda: _last_imap_event(logs) == "imap_idle", 30, "the poller to be in IDLE")
    dovecot.kill()  # SIGKILL to the whole group: the IDLE connection drops at once
    killed = time.monotonic()
    wait_until(lambda: logs.events("imap_error"), 30, "the poller to notice")
    assert "IDLE" in logs.events("imap_error")[0]["reason"]
    dovecot.start()  # same port, same mail store
    back = time.monotonic()
    dovecot.append_many([fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes()
                         for _ in range(3)])
    wait_until(lambda: len(logs.events("imap_connected")) == 2, 60, "the reconnection")
    print(f"IMAP: Dovecot down {back - killed:.1f} s, reconnected "
          f"{time.monotonic() - back:.1f} s after it was back")
    wait_until(lambda: dovecot.count("Done") == 4, 30, "the mails that came meanwhile")
    assert dovecot.count("INBOX") == 0
    assert count(app.store, Job) == 4
    assert len(logs.events("imap_message")) == 4


def test_killed_between_commit_and_move_moves_after_restart_without_a_second_job(
        dovecot: Dovecot, sink: Sink, tmp_path: Path, pdf: bytes) -> None:
    """`mailgw serve` is SIGKILLed after the job is committed and before the mail is moved.

    The window is held open for real, not by a debug switch: the Done folder is made
    read-only on the server, so Dovecot answers the MOVE with NO and the mail stays in
    INBOX (mailgw logs imap_move_failed and would retry). The kill then always lands after
    the commit and before any successful move. After the folder is writable again, a new
    process reads the mail again: intake answers it as a duplicate, the mail is moved, and
    there is still one job and one ack."""
    secret = tmp_path / "imap.secret"
    secret.write_text(MAIL_PASSWORD + "\n")
    secret.chmod(0o600)
    cfg = tmp_path / "imap.toml"
    cfg.write_text(f'''
[gateway]
fax_address = "fax@gw.example.org"
voice_address = "voice@gw.example.org"
domain = "gw.example.org"
[store]
url = "sqlite:///{tmp_path / 'imap.db'}"
[notify]
smarthost = "127.0.0.1:{sink.port}"
poll_interval = "100ms"
smtp_timeout = "3s"  # the ack's outbox lease (2 x this, at least 10 s) if the kill hits a send
[dispatch]
poll_interval = "100ms"
[drivers.simulator]
time_scale = 0.002
[log]
format = "json"
[[imap.mailboxes]]
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
user = "{MAIL_USER}"
password_file = "{secret}"
timeout = "5s"
''')
    assert mailgw("account", "add", SENDER, "--password-stdin", "--config", str(cfg),
                  stdin=PASSWORD + "\n").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGW_")}

    def serve(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as f:
            return subprocess.Popen([sys.executable, "-m", "mailgw", "serve", "--roles",
                                     "imap,dispatch,notify", "--config", str(cfg)],
                                    stdout=f, stderr=subprocess.STDOUT, env=env)

    def read_only(folder: Path, mode: int) -> None:
        for root, _dirs, _files in os.walk(folder):
            os.chmod(root, mode)

    settings = config.load(cfg, environ={})
    store: Store | None = None  # opened once the first process has migrated it
    log1, log2 = tmp_path / "first.log", tmp_path / "second.log"
    first = serve(log1)
    second = None
    try:
        wait_until(lambda: '"event": "imap_idle"' in log1.read_text(), 60, "first IDLE")
        assert dovecot.folder("Done").is_dir()  # made by mailgw's CREATE / Dovecot's auto
        store = prepare_store(settings, migrate=False)
        read_only(dovecot.folder("Done"), 0o555)
        msg = fax_message(f"{PASSWORD}:0170709901", pdf)
        dovecot.append(msg.as_bytes())
        wait_until(lambda: count(store, Job) == 1, 30, "the job to be committed")
        wait_until(lambda: '"event": "imap_move_failed"' in log1.read_text(), 30,
                   "the move to be refused")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert dovecot.count("INBOX") == 1 and dovecot.count("Done") == 0  # window was hit
        read_only(dovecot.folder("Done"), 0o755)
        second = serve(log2)
        wait_until(lambda: dovecot.count("Done") == 1, 60, "the move after the restart")
        assert dovecot.count("INBOX") == 0
        assert count(store, Job) == 1 and count(store, ProcessedMessage) == 1
        assert count(store, OutboxMail, OutboxMail.kind == "ack") == 1
        assert '"duplicate": true' in log2.read_text()
        sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "ack" for m in ms), 30, "the ack")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        assert len(sink.kinds("ack")) == 1
        assert '"event": "imap_stopped"' in log2.read_text()
        assert MAIL_PASSWORD not in log1.read_text() + log2.read_text()
    finally:
        read_only(dovecot.folder("Done"), 0o755)
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        if store is not None:
            store.dispose()


def test_implicit_tls_and_starttls(imap_app: Callable[..., RunningApp], pdf: bytes,
                                   logs: Logs, monkeypatch: pytest.MonkeyPatch) -> None:
    """One box over implicit TLS, one with STARTTLS (done by hand: aioimaplib has none);
    a box asking for plain IMAP to a host that is not loopback is refused at start."""
    dovecot_or_skip()
    need(shutil.which("openssl") is not None, "openssl not found (makes the test certificate)")
    server = Dovecot(users={MAIL_USER: MAIL_PASSWORD, "fax2": "fax2-pw"}, tls=True).start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(server.cert))  # trust the test's own CA
        app = imap_app(box(server, tls="implicit", port=server.tls_port),
                       box(server, tls="starttls", user="fax2", password="fax2-pw"),
                       box(server, tls="none", host="192.0.2.1"))
        server.append(fax_message(f"{PASSWORD}:0170709901", pdf).as_bytes())
        server.append(fax_message(f"{PASSWORD}:0170709902", pdf).as_bytes(), user="fax2")
        wait_until(lambda: server.count("Done") == 1 and server.count("Done", "fax2") == 1,
                   30, "both mails in Done")
        assert count(app.store, Job) == 2
        assert sorted(e["tls"] for e in logs.events("imap_connected")) == [
            "implicit", "starttls"]
        (refused,) = logs.events("imap_mailbox_refused")
        assert refused["host"] == "192.0.2.1" and "loopback" in refused["reason"]
        assert not logs.events("imap_error")
        logins = [x for x in server.log().splitlines() if "Login: user=<fax2>" in x]
        assert any(", TLS," in x for x in logins), logins  # STARTTLS really happened
    finally:
        server.cleanup()
