"""`mailgw demo`: the whole path in one process, on embedded defaults, in seconds.

A temporary SQLite store, the simulator driver, the real SMTP listener, and an in-process
SMTP sink standing in for the smarthost. It sends a fax mail and a voice mail the way a
user's mail client would, then prints what the sender gets back.
"""

from __future__ import annotations

import asyncio
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

from mailgw import accounts, config, logs
from mailgw.app import App, prepare_store
from mailgw.samples import make_pdf, make_wav

DEMO_SENDER = "alice@example.com"
DEMO_PASSWORD = "FGB45L"  # the password of DESIGN's examples; a throw-away demo account


class Sink:
    """A tiny smarthost that keeps what it receives."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                           envelope.original_content or b""))
        self.arrived.set()
        return "250 2.0.0 OK"


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
        "drivers": {"simulator": {"time_scale": 0.02}},
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
        want = 4  # two acks, two notices
        deadline = time.monotonic() + 60
        while len(sink.mails) < want and time.monotonic() < deadline:
            sink.arrived.clear()
            try:
                await asyncio.wait_for(sink.arrived.wait(), timeout=1)
            except TimeoutError:
                pass
        out.write(f"\nThe sender received {len(sink.mails)} mails:\n")
        for i, (_frm, _to, raw) in enumerate(sink.mails, start=1):
            show(out, i, raw)
        if len(sink.mails) < want:
            out.write(f"\nonly {len(sink.mails)} of {want} mails arrived in time\n")
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
    return asyncio.run(run_demo(lang=lang, keep=keep))
