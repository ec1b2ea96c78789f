"""Every Subject example in the README and the three user guides, sent over real SMTP to the
running gateway: the code in the reply and the numbers of the job are what the text says.

The examples are read from the documents themselves (the tables' first column, the README's
bullets, the "number in the address" sentence), so a guide can never document a rule that
`serve` does not follow. Each document's examples are run in order for one account (the
cancel example needs the deferred one before it).
"""

from __future__ import annotations

import io
import re
import smtplib
import uuid
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from pypdf import PdfWriter
from sqlalchemy import select

from mailgw.accounts import accounts, groups, voice
from mailgw.store.models import Delivery, Job
from tests.conftest import PASSWORD, RunningApp, Sink, make_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = {  # document -> (account region, language, time zone): the account its examples assume
    "README.md": ("FR", "en", "Europe/Paris"),
    "docs/user-guide.en.md": ("FR", "en", "Europe/Paris"),
    "docs/user-guide.fr.md": ("FR", "fr", "Europe/Paris"),
    "docs/user-guide.ru.md": ("RU", "ru", "Europe/Moscow"),
}
VOICE_WORDS = ("voice address", "adresse vocale", "голосовой адрес")
NUMBER_TEXT = re.compile(r"\+\d[\d ()-]{5,20}\d")
WHEN = re.compile(r":\s*(\d{12})(s?)\s*:?\s*$")


@dataclass
class Example:
    subject: str
    what: str  # the document's own words about it
    to: str = "fax@gw.example.org"
    attach: str | None = None  # a file name the example attaches
    numbers: list[str] = field(default_factory=list)  # E.164 numbers the text promises

    @property
    def code(self) -> int:
        m = WHEN.search(self.subject)
        if m is None:
            return 80
        return 95 if m.group(2) else 81


def _numbers(text: str, region: str) -> list[str]:
    return [_e164(m.group(0), region) for m in NUMBER_TEXT.finditer(text)]


def _e164(text: str, region: str) -> str:
    n = phonenumbers.parse(text, region)
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def examples(doc: str) -> list[Example]:
    """The Subject examples a document gives, in the order it gives them."""
    region = DOCS[doc][0]
    text = (ROOT / doc).read_text(encoding="utf-8")
    found: list[Example] = []
    for line in text.splitlines():
        row = re.match(r"\| (.*?`[^`]*FGB45L[^`]*`.*?) \| (.+) \|$", line)
        bullet = re.match(r"- `([^`]*FGB45L[^`]*)` — (.+)$", line)
        if row and not row.group(1).startswith("**"):
            first, what = row.group(1), row.group(2)
            subject = re.search(r"`([^`]*FGB45L[^`]*)`", first)
            assert subject is not None
            ex = Example(subject.group(1), what)
            if any(w in first for w in VOICE_WORDS):
                ex.to = "voice@gw.example.org"
            attached = re.findall(r"`([\w.-]+\.(?:csv|txt|wav))`", first)
            ex.attach = attached[0] if attached else None
        elif bullet:
            ex = Example(bullet.group(1), bullet.group(2))
        else:
            continue
        ex.numbers = _numbers(ex.what, region)
        found.append(ex)
    for m in re.finditer(r"`(\+\d+)@[^`]+`[^`]{1,40}?`(FGB45L[^`]*)`", text):
        found.append(Example(m.group(2), "number in the address",
                             to=f"{m.group(1)}@gw.example.org", numbers=[m.group(1)]))
    return found


def csv_block(doc: str) -> bytes:
    """The document's own example list (the fenced block under the lists section)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if ";" in b and "\n" in b.strip()).encode()


def wav_bytes(seconds: float = 2.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        square = [(3000 if (i // 20) % 2 else -3000) for i in range(int(8000 * seconds))]
        w.writeframes(b"".join(v.to_bytes(2, "little", signed=True) for v in square))
    return buf.getvalue()


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def mail(ex: Example, sender: str, doc: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ex.to
    msg["Subject"] = ex.subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg.set_content("Example from the documentation.\n")
    voice_mail = ex.to.startswith("voice@")
    cancel = ex.code == 95
    if ex.attach and ex.attach.endswith(".wav"):
        msg.add_attachment(wav_bytes(), maintype="audio", subtype="wav", filename=ex.attach)
    elif ex.attach:
        msg.add_attachment(csv_block(doc), maintype="text", subtype="csv", filename=ex.attach)
    if not voice_mail and not cancel:
        msg.add_attachment(pdf_bytes(), maintype="application", subtype="pdf",
                           filename="document.pdf")
    return msg


def send(port: int, msg: EmailMessage) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo()
        s.mail(str(msg["From"]))
        s.rcpt(str(msg["To"]))
        code, reply = s.data(re.sub(rb"\r?\n", b"\r\n", msg.as_bytes()))
    return code, reply.decode("utf-8", "replace")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[[], RunningApp]]:
    sink = Sink().start()
    apps: list[RunningApp] = []

    def start() -> RunningApp:
        settings = make_settings(f"sqlite:///{tmp_path / f'doc{len(apps)}.db'}", sink.port)
        app = RunningApp(settings, roles=("smtp",)).start()
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
    sink.stop()


def _prepare(app: RunningApp, doc: str, exs: list[Example], sender: str) -> None:
    """The account the document assumes, with the groups and recorded messages it names."""
    region, lang, tz = DOCS[doc]
    app.add_account(sender, PASSWORD, region=region, lang=lang, tz=tz)
    local = {"FR": ["0170709902", "0170709903"], "RU": ["84951234502", "84951234503"]}[region]
    with app.store.tx() as s:
        account = accounts.find_by_email(s, sender)
        assert account is not None
        for ex in exs:
            for name in re.findall(r"@([^\s,;:@]+)", ex.subject):
                if name not in dict(groups.list_groups(s, sender)):
                    groups.add_numbers(s, sender, name, local)
            fields = [f.strip() for f in ex.subject.split(":")]
            if ex.to.startswith("voice@") and not ex.attach and len(fields) > 2 and fields[2]:
                voice.store_message(s, account.id, fields[2], wav_bytes(), 2.0)


def _job_numbers(app: RunningApp, job_id: int) -> list[str]:
    with app.store.tx() as s:
        return list(s.scalars(select(Delivery.number).where(Delivery.job_id == job_id)))


@pytest.mark.parametrize("doc", list(DOCS))
def test_every_example_does_what_the_document_says(gateway: Callable[[], RunningApp],
                                                    doc: str) -> None:
    exs = examples(doc)
    assert len(exs) >= (5 if doc == "README.md" else 12), [e.subject for e in exs]
    app = gateway()
    sender = "alice@example.com"
    _prepare(app, doc, exs, sender)
    for ex in exs:
        if ex.attach and ex.attach.endswith((".csv", ".txt")):  # every row of the list
            rows = csv_block(doc).decode()
            ex.numbers += [_e164(n, DOCS[doc][0]) for n in re.findall(r";([+0-9 ()-]{8,});", rows)]
        code, reply = send(app.port, mail(ex, sender, doc))
        assert code == 250, (doc, ex.subject, code, reply)
        got = re.search(r"\[(\d\d)\]", reply)
        assert got is not None and int(got.group(1)) == ex.code, (doc, ex.subject, reply)
        if ex.code in (80, 81):
            job = re.search(r"\d+", reply[got.end():])
            assert job is not None, reply
            numbers = _job_numbers(app, int(job.group(0)))
            assert numbers, (doc, ex.subject)
            for promised in ex.numbers:
                assert promised in numbers, (doc, ex.subject, promised, numbers)
    with app.store.tx() as s:
        jobs: list[Any] = list(s.scalars(select(Job)))
    assert len(jobs) >= len([e for e in exs if e.code != 95])
