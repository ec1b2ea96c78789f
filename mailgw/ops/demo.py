"""`mailgw demo`: the whole path in one process, on embedded defaults, in seconds.

A temporary SQLite store, the simulator driver, the real SMTP listener, and an in-process
SMTP sink standing in for the smarthost. It sends a fax mail and a voice mail the way a
user's mail client would, then prints what the sender gets back.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
import tempfile
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

import aiosmtplib
from aiosmtpd.smtp import SMTP

from mailgw.accounts import accounts
from mailgw.app import App, prepare_store
from mailgw.documents.samples import make_pdf, make_wav
from mailgw.ops import config, logs
from mailgw.store import Store
from mailgw.store.views import answers_due

DEMO_SENDER = "alice@example.com"
DEMO_PASSWORD = "FGB45L"  # the password of DESIGN's examples; a throw-away demo account
TIME_SCALE = 0.01  # the simulator at 100 times real speed: a 75 s fax call lasts 0.75 s
ANSWER_LIMIT = 30.0  # a bound for a bug, not a wait: the demo stops at its last answer


class Sink:
    """A tiny smarthost that keeps what it receives, and the Message-IDs it has seen."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.message_ids: set[str] = set()
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), raw))
        head = message_from_bytes(raw.split(b"\r\n\r\n", 1)[0], policy=policy.compat32)
        self.message_ids.add(str(head.get("Message-ID", "")).strip())
        self.arrived.set()
        return "250 2.0.0 OK"


def all_answered(store: Store, received: set[str]) -> bool:
    """Every mail sent has all its answers: no job still calling (a final state writes its
    notice in the same transaction), and every mail the outbox holds (acks, notices,
    summaries) has reached the sink. Exact, so the demo waits no longer than the work."""
    expected = answers_due(store)
    return expected is not None and expected <= received


async def wait_for_answers(store: Store, sink: Sink, limit: float) -> bool:
    """Check after each mail the sink receives (the last answer is always such a mail);
    `limit` only guards against a bug."""
    deadline = time.monotonic() + limit
    while True:
        sink.arrived.clear()
        if await asyncio.to_thread(all_answered, store, set(sink.message_ids)):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(sink.arrived.wait(), timeout=left)
        except TimeoutError:
            pass


async def start_sink() -> tuple[Sink, asyncio.Server, int]:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="sink.demo", loop=loop),
                                      host="127.0.0.1", port=0)
    return sink, server, server.sockets[0].getsockname()[1]


def fax_mail(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Alice Martin <{DEMO_SENDER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<demo-fax-1@example.com>"
    msg.set_content("Please fax the attached invoice.\n")
    pdf = make_pdf([["Invoice INV-2026-001", "", "ACME Ltd - 3 items", "Total: 1,234.00 EUR"],
                    ["Page 2: terms and conditions", "Payment within 30 days."]])
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg


def voice_mail(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Alice Martin <{DEMO_SENDER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<demo-voice-1@example.com>"
    msg.set_content("Voice reminder attached.\n")
    msg.add_attachment(make_wav(4.0), maintype="audio", subtype="wav", filename="reminder.wav")
    return msg


def show(out: TextIO, index: int, raw: bytes) -> None:
    msg = message_from_bytes(raw, policy=policy.default)
    kind = msg.get("X-Mailgw-Kind", "?")
    out.write(f"\n──── mail {index}: {kind} ─────────────────────────────────────────\n")
    for name in ("From", "To", "Subject"):
        out.write(f"{name}: {msg.get(name, '')}\n")
    for name, value in msg.items():
        if name.lower().startswith("x-mailgw-") or name.lower() == "auto-submitted":
            out.write(f"{name}: {value}\n")
    body = msg.get_body(preferencelist=("plain",))
    out.write("\n" + (body.get_content().rstrip() if body is not None else "") + "\n")


async def run_demo(out: TextIO = sys.stdout, lang: str = "en", keep: bool = False) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mailgw-demo-"))
    sink, sink_server, sink_port = await start_sink()
    settings = config.load(search=False, environ={}, overrides={
        "store": {"url": f"sqlite:///{workdir / 'demo.db'}"},
        "smtp": {"listen": "127.0.0.1:0"},
        "notify": {"smarthost": f"127.0.0.1:{sink_port}", "poll_interval": "200ms",
                   "from_address": "fax@localhost"},
        "dispatch": {"poll_interval": "200ms", "lease_seconds": "10s"},
        "drivers": {"simulator": {"time_scale": TIME_SCALE}},
    })
    store = await asyncio.to_thread(prepare_store, settings)
    with store.tx() as s:
        accounts.add_account(s, DEMO_SENDER, DEMO_PASSWORD, region="FR", lang=lang,
                             tz="Europe/Paris", credits=None)
    app = App(settings, store, ("smtp", "dispatch", "notify"))
    await app.start()
    addr = app.smtp_address
    assert addr is not None
    out.write(f"mailgw demo: SMTP listener on {addr[0]}:{addr[1]}, smarthost sink on "
              f"127.0.0.1:{sink_port}, store {workdir / 'demo.db'}\n")
    out.write(f"demo account {DEMO_SENDER} (password {DEMO_PASSWORD}, language {lang})\n\n")
    g = settings.gateway
    sends = [
        ("fax", fax_mail(g.fax_address,
                         f"{DEMO_PASSWORD}:01 70 70 99 01:INV-2026-001:Invoice March")),
        ("voice", voice_mail(g.voice_address, f"{DEMO_PASSWORD}:06 12 34 56 78::Reminder")),
    ]
    code = 0
    try:
        for what, msg in sends:
            out.write(f">>> {what} mail to {msg['To']}, Subject: {msg['Subject']}\n")
            try:
                _, reply = await aiosmtplib.send(msg, hostname=addr[0], port=addr[1],
                                                 timeout=30)
                out.write(f"<<< SMTP reply: 250 {reply}\n")
            except aiosmtplib.SMTPResponseException as exc:
                out.write(f"<<< SMTP reply: {exc.code} {exc.message}\n")
                code = 1
        complete = await wait_for_answers(store, sink, ANSWER_LIMIT)
        out.write(f"\nThe sender received {len(sink.mails)} mails:\n")
        for i, (_frm, _to, raw) in enumerate(sink.mails, start=1):
            show(out, i, raw)
        if not complete:
            out.write(f"\nnot every answer arrived within {ANSWER_LIMIT:.0f} s\n")
            code = 1
        out.write(f"\ndemo finished in {time.monotonic() - started:.1f} s\n")
    finally:
        await app.stop()
        sink_server.close()
        store.dispose()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


def main(lang: str = "en", keep: bool = False) -> int:
    logs.setup("warning", "console")
    code = asyncio.run(run_demo(lang=lang, keep=keep))
    # The process ends now: frozen objects are left out of the collections that run while
    # the interpreter shuts down (measured: 0.5 s of the demo's 3 s went there).
    gc.freeze()
    return code
