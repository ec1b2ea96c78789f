"""Outlook's winmail.dat (TNEF): the PDF inside is the document; a fake one never breaks."""

from __future__ import annotations

import struct
from email.message import EmailMessage
from pathlib import Path

from mailgw.documents.samples import make_pdf
from mailgw.inbound.mail import parse_mail


def _attr(level: int, name: int, typ: int, data: bytes) -> bytes:
    return (struct.pack("<BII", level, (typ << 16) | name, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def make_tnef(files: list[tuple[str, bytes]]) -> bytes:
    """A minimal TNEF stream as Outlook writes it: version, then per file RendData, Title, Data."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += _attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))
    for name, data in files:
        out += _attr(2, 0x9002, 0x0006, b"\x01\x00\xff\xff\xff\xff" + b"\0" * 8)
        out += _attr(2, 0x8010, 0x0001, name.encode() + b"\0")
        out += _attr(2, 0x800F, 0x0006, data)
    return out


def outlook_mail(blob: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "fax@gw.example.org"
    msg["Subject"] = "FGB45L:0170709901"
    msg.set_content("see attachment")
    msg.add_attachment(blob, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


def test_pdf_inside_winmail_dat_is_the_document() -> None:
    pdf = make_pdf([["scanned"]])
    mail = parse_mail(outlook_mail(make_tnef([("scan.pdf", pdf), ("note.txt", b"hi")])))
    (doc,) = mail.documents()
    assert doc.filename == "scan.pdf" and doc.data == pdf and doc.nested
    assert [a.filename for a in mail.attachments] == ["winmail.dat"]


def test_winmail_dat_that_is_not_tnef_yields_nothing(corpus: Path) -> None:
    raw = (corpus / "emails" / "79-outlook-tnef-read-receipt-subject.eml").read_bytes()
    mail = parse_mail(raw)
    assert mail.documents() == [] and mail.is_auto_reply
    assert parse_mail(outlook_mail(b"\x78\x9f\x3e\x22garbage")).documents() == []
