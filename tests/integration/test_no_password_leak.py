"""No password anywhere: one account with a distinctive password sends every kind of mail
over real SMTP (and over IMAP through a private Dovecot), the dispatcher runs them to their
final notices, and then every row of every table, every log line and every mail the sink
received is searched for the password. Runs on SQLite and on PostgreSQL.

What is searched is decoded first: bytes columns leniently, stored outbox mails and sink
mails part by part (RFC 2047 headers, base64 and quoted-printable bodies), log lines as
the JSON the daemon writes (`mailgw.ops.logs.setup`, debug level).
"""

from __future__ import annotations

import base64
import io
import logging
import smtplib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage, Message
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy import MetaData, create_engine, func, select

from mailgw.documents.samples import make_pdf
from mailgw.ops import logs
from mailgw.store import Delivery, Job, OutboxMail, Store
from tests.conftest import RunningApp, Sink, make_settings, wait_until
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, Dovecot, dovecot_or_skip

PW = "Zq7xK9pw"
SENDER = "zoe@example.com"
FAX = "fax@gw.example.org"
PDF = make_pdf([["Invoice 2027-01", "Please pay."]])
SECRETS = (PW, MAIL_PASSWORD)


def when(days: int) -> str:
    """A deferred time `days` from now, as the Subject writes it (HHMMDDMMYYYY, Paris)."""
    at = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=days)
    return at.replace(hour=15, minute=30).strftime("%H%M%d%m%Y")


# -- the mails ---------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    subject: str  # the Subject header as written on the wire (folded / encoded as it is)
    code: int | None  # None: ignored (auto-reply)
    to: str = FAX
    pdf: bytes | None = PDF
    csv: str | None = None
    auth: bool = False
    message_id: str = field(default_factory=lambda: f"<{uuid.uuid4().hex}@example.com>")

    def raw(self) -> bytes:
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"] = SENDER
        msg["To"] = self.to
        msg["Message-ID"] = self.message_id
        msg.set_content("Please fax the attachment.\n")
        if self.pdf is not None:
            msg.add_attachment(self.pdf, maintype="application", subtype="pdf",
                               filename="invoice.pdf")
        if self.csv is not None:
            msg.add_attachment(self.csv.encode(), maintype="text", subtype="csv",
                               filename="numbers.csv")
        head, _, rest = msg.as_bytes().partition(b"\r\n")
        return head + b"\r\nSubject: " + self.subject.encode() + b"\r\n" + rest


def encoded_b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def encoded_q_split(text: str) -> str:
    """Several Q encoded words, folded, the password cut in two."""
    return Header(text, "utf-8", maxlinelen=30).encode().replace("\n", "\r\n")


def smtp_cases() -> list[Case]:
    far, farther = when(400), when(401)
    return [
        Case("accepted", f"{PW}:0170709901:INV-1:relance", 80),
        Case("accepted, then fails (97)", f"{PW}:0170709997:INV-2", 80),
        Case("invalid number (84)", f"{PW}:12:INV-3", 84),
        Case("no document (92)", f"{PW}:0170709902", 92, pdf=None),
        Case("past date (85)", f"{PW}:0170709903::old:153001012020", 85),
        Case("broken PDF (93)", f"{PW}:0170709917", 93, pdf=b"%PDF-1.4\nnot a pdf\n"),
        Case("unknown group (86)", f"{PW}:@nogroup", 86),
        Case("deferred (81)", f"{PW}:0170709904:INV-7:later:{far}", 81),
        Case("cancelled (95)", f"{PW}:0170709904:INV-7::{far}s", 95),
        Case("nothing to cancel (96)", f"{PW}:0170709905:::{farther}s", 96),
        Case("address form, password only", PW, 80, to="+33170709906@gw.example.org"),
        Case("address form, password::ref", f"{PW}::REF-9", 80,
             to="+33170709907@gw.example.org"),
        Case("Re:", f"Re: {PW}:0170709908", 80),
        Case("TR: Fwd:", f"TR: Fwd: {PW}:0170709909", 80),
        Case("RFC 2047 B", encoded_b(f"{PW}:0170709910:INV-10:relancé"), 80),
        Case("RFC 2047 Q, split", encoded_q_split(f"Re: {PW}:0170709911:INV-11:réunion"), 80),
        Case("folded", f"Re:\r\n {PW}\r\n :0170709912", 80),
        Case("spaces and tabs", f"  {PW} \t:\t0170709913 ", 80),
        Case("list: a summary", f"{PW}::LIST-1", 80,
             csv="FAX\n0170709914\n0170709915\n0170709916\n"),
        Case("wrong password (82)", f"{PW}X:0170709918", 82),
        Case("auto-reply", f"Automatic reply: {PW}:0170709919", None),
        Case("SMTP AUTH, Subject too long (94)", f"{PW}:0170709920:INV:{'x' * 400}", 94,
             auth=True),
        Case("SMTP AUTH", f"Fwd: {PW}:0170709921", 80, auth=True),
    ]


def imap_cases() -> list[Case]:
    far = when(402)
    return [
        Case("imap accepted, Q encoded", encoded_q_split(f"Re: {PW}:0170709931:I-1"), 80),
        Case("imap folded", f"TR:\r\n {PW}\r\n\t:0170709932", 80),
        Case("imap invalid number (84)", f"{PW}:99:I-3", 84),
        Case("imap no document (92)", f"{PW}:0170709933", 92, pdf=None),
        Case("imap deferred (81)", f"{PW}:0170709934:I-5::{far}", 81),
        Case("imap cancelled (95)", f"{PW}:0170709934:I-5::{far}s", 95),
        Case("imap wrong password (82)", f"{PW}Y:0170709935", 82),
        Case("imap password only (89)", PW, 89),
    ]


# -- sending -----------------------------------------------------------------------------

def send(port: int, case: Case) -> str:
    """One SMTP session; the reply line, whatever its code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        if case.auth:
            client.login(SENDER, PW)
        client.mail(SENDER)
        code, text = client.rcpt(case.to)
        assert code == 250, (case.name, code, text)
        code, text = client.data(case.raw())
    return f"{code} {text.decode('utf-8', 'replace')}"


# -- searching ---------------------------------------------------------------------------

@dataclass
class Scan:
    """Where each secret was found; what was searched, counted."""

    hits: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0
    values: int = 0
    stored_mails: int = 0
    log_lines: int = 0
    mails: int = 0
    parts: int = 0
    replies: int = 0

    def look(self, text: str, where: str) -> None:
        for secret in SECRETS:
            if secret in text:
                at = text.index(secret)
                self.hits.append(f"{where}: …{text[max(at - 60, 0):at + 40]!r}…")

    def look_bytes(self, data: bytes, where: str) -> None:
        self.look(data.decode("utf-8", "replace"), where)
        self.look(data.decode("latin-1"), where)
        if data.lstrip()[:5] != b"%PDF-" and b"\n\n" in data.replace(b"\r\n", b"\n"):
            self.stored_mails += 1
            self.look_mail(data, where)

    def look_mail(self, raw: bytes, where: str) -> int:
        """Every part of a mail, decoded: headers (RFC 2047) and payloads (base64, QP)."""
        parts = 0
        msg: Message = message_from_bytes(raw, policy=policy.default)
        for n, part in enumerate(msg.walk()):
            parts += 1
            for name, value in part.items():
                self.look(f"{name}: {value}", f"{where} part {n} header {name}")
            if part.is_multipart():
                continue
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = payload.decode(charset, "replace")
                except LookupError:
                    text = payload.decode("utf-8", "replace")
                self.look(text, f"{where} part {n} body")
        return parts

    def store(self, url: str) -> None:
        """Every row of every table, read back from the database itself."""
        engine = create_engine(url)
        try:
            meta = MetaData()
            meta.reflect(engine)
            with engine.connect() as conn:
                for table in meta.sorted_tables:
                    self.tables += 1
                    for row in conn.execute(select(table)).mappings():
                        self.rows += 1
                        key = row.get("id", "?")
                        for column, value in row.items():
                            self.values += 1
                            where = f"{table.name}.{column} (id {key})"
                            if isinstance(value, memoryview | bytearray):
                                value = bytes(value)
                            if isinstance(value, bytes):
                                self.look_bytes(value, where)
                            elif value is not None:
                                self.look(str(value), where)
        finally:
            engine.dispose()

    def log(self, text: str) -> None:
        for n, line in enumerate(text.splitlines(), start=1):
            self.log_lines += 1
            self.look(line, f"log line {n}")

    def sink(self, sink: Sink) -> None:
        with sink.handler.cond:
            received = list(sink.handler.mails)
        for n, (mail_from, rcpts, raw) in enumerate(received):
            self.mails += 1
            self.look(f"{mail_from} {rcpts}", f"sink mail {n} envelope")
            self.look(raw.decode("utf-8", "replace"), f"sink mail {n} raw")
            self.parts += self.look_mail(raw, f"sink mail {n}")

    def report(self, label: str) -> str:
        return (f"no-password scan [{label}]: {self.rows} rows ({self.values} values, "
                f"{self.stored_mails} stored mails decoded) in {self.tables} tables, "
                f"{self.log_lines} log lines, {self.mails} sink mails ({self.parts} parts), "
                f"{self.replies} SMTP replies: {len(self.hits)} hits")


def test_the_scan_finds_a_password_hidden_in_a_mail() -> None:
    """The search can fail: a password in a B-encoded header, a base64 body, a
    quoted-printable body cut by a soft line break, a bytes column."""
    header = b"Subject: " + encoded_b(f"[80] Fax – {PW}:01").encode() + b"\n\nbody\n"
    mails = [header]
    for cte in ("base64", "quoted-printable"):
        msg = EmailMessage()
        msg["Subject"] = "x"
        msg.set_content("x" * 73 + PW + " é", cte=cte)
        mails.append(msg.as_bytes())
    for raw in mails:
        assert PW.encode() not in raw  # hidden by the encoding
        scan = Scan()
        scan.look_bytes(raw, "mail")
        assert scan.hits and scan.stored_mails == 1, raw


# -- the running gateway -----------------------------------------------------------------

@pytest.fixture
def log_text(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The daemon's own logging set-up (JSON lines, debug), written to a buffer; structlog
    and the stdlib's root logger are given back as they were."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(buffer)
    mail_log = logging.getLogger("mail.log")
    mail_log_level = mail_log.level

    def basic_config(**kw: Any) -> None:  # the root's handlers belong to pytest: add ours
        handler.setFormatter(logging.Formatter(kw.get("format")))
        handler.setLevel(kw.get("level", logging.WARNING))
        root.addHandler(handler)

    monkeypatch.setattr(logging, "basicConfig", basic_config)
    logs.setup("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        mail_log.setLevel(mail_log_level)
        structlog.configure(**saved)


def start(sink: Sink, url: str, roles: tuple[str, ...], **sections: Any) -> RunningApp:
    settings = make_settings(
        url, sink.port, smtp={"listen": "127.0.0.1:0", "allow_auth_without_tls": True},
        limits={"max_subject_bytes": 300, "auth_failures": 50},
        notify={"smarthost": f"127.0.0.1:{sink.port}", "poll_interval": "100ms",
                "from_address": FAX, "retry_first": "200ms", "summary_from": 3},
        **sections)
    app = RunningApp(settings, roles)
    app.add_account(SENDER, PW)
    app.start()
    assert app.app is not None
    if "smtp" in roles:
        app.app._refresh_auth()  # the account was added before start; be sure AUTH knows it
    return app


def settled(store: Store) -> bool:
    """Every job final, every outbox mail sent."""
    with store.read() as s:
        open_jobs = s.scalar(select(func.count()).select_from(Job)
                             .where(Job.state.in_(("active", "scheduled"))))
        open_deliveries = s.scalar(select(func.count()).select_from(Delivery)
                                   .where(Delivery.finished_at.is_(None)))
        unsent = s.scalar(select(func.count()).select_from(OutboxMail)
                          .where(OutboxMail.sent_at.is_(None)))
    return open_jobs == 0 and open_deliveries == 0 and unsent == 0


def moved(server: Dovecot, n: int) -> bool:
    """The first n mails are read: moved out of the INBOX."""
    return server.count("Done") + server.count("Rejected") == n


def outbox_count(store: Store) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxMail)) or 0)


def scan_all(app: RunningApp, url: str, sink: Sink, log_text: io.StringIO,
             replies: list[str], label: str) -> Scan:
    """Wait for the end of everything, stop the gateway, search everything."""
    wait_until(lambda: settled(app.store), 60, "every job final and every mail sent")
    wait_until(lambda: len(sink.handler.mails) >= outbox_count(app.store), 30,
               "the sink to hold every outbox mail")
    app.stop()  # its last log lines too
    scan = Scan()
    scan.store(url)
    scan.log(log_text.getvalue())
    scan.sink(sink)
    for n, reply in enumerate(replies):
        scan.replies += 1
        scan.look(reply, f"SMTP reply {n}")
    print("\n" + scan.report(label))
    return scan


def check(scan: Scan, sink: Sink, acked: set[int]) -> None:
    assert scan.rows > 0 and scan.values > 0 and scan.log_lines > 0 and scan.mails > 0
    assert scan.stored_mails >= scan.mails  # every sent mail is also a stored outbox body
    assert not scan.hits, "\n".join(scan.hits[:40])
    kinds = {m["X-Mailgw-Kind"] for m in sink.messages}
    codes = {int(m["X-Mailgw-Code"]) for m in sink.kinds("ack")}
    assert codes == acked, codes
    assert {"ack", "notice"} <= kinds
    # the masks are there, decoded: what was searched is what a reader sees
    assert all("•••" in str(m["Subject"]) for m in sink.kinds("ack")), [
        str(m["Subject"]) for m in sink.kinds("ack")]


def test_no_password_over_smtp(sink: Sink, store_url: str, log_text: io.StringIO) -> None:
    app = start(sink, store_url, ("smtp", "dispatch", "notify"))
    cases = smtp_cases()
    replies = []
    for case in cases:
        reply = send(app.port, case)
        replies.append(reply)
        wanted = "Automatic message" if case.code is None else f"[{case.code}]"
        assert wanted in reply, (case.name, reply)
    replies.append(send(app.port, cases[0]))  # the same mail again: answered, not run twice
    label = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    scan = scan_all(app, store_url, sink, log_text, replies, f"smtp, {label}")
    check(scan, sink, {c.code for c in cases if c.code not in (None, 82)})
    assert sink.kinds("summary"), "the list's job gets a summary"
    states = {m["X-Mailgw-State"] for m in sink.kinds("notice")}
    assert {"delivered", "failed", "cancelled"} <= states, states


def test_no_password_over_imap(sink: Sink, store_url: str, log_text: io.StringIO) -> None:
    dovecot_or_skip()
    server = Dovecot().start()
    try:
        box = {"host": "127.0.0.1", "port": server.port, "tls": "none", "user": MAIL_USER,
               "password": MAIL_PASSWORD, "timeout": "5s", "poll_interval": "300ms"}
        app = start(sink, store_url, ("imap", "dispatch", "notify"),
                    imap={"mailboxes": [box]})
        cases = imap_cases()
        for n, case in enumerate(cases, start=1):  # one at a time: a cancel needs its job
            server.append(case.raw())
            wait_until(partial(moved, server, n), 30, f"{case.name} to be read")
        assert server.count("Rejected") == 1 and server.count("INBOX") == 0
        label = "sqlite" if store_url.startswith("sqlite") else "postgresql"
        scan = scan_all(app, store_url, sink, log_text, [], f"imap, {label}")
        check(scan, sink, {c.code for c in cases if c.code not in (None, 82)})
        states = {m["X-Mailgw-State"] for m in sink.kinds("notice")}
        assert {"delivered", "cancelled"} <= states, states
    finally:
        server.cleanup()


