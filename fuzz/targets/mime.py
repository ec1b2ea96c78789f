"""Raw mail bytes -> InboundMail (mailgw.inbound.mail.parse_mail), auto-reply verdict included.

parse_mail promises never to raise. Its last line of defence turns an internal error into
an ``InternalError: ...`` defect and an empty mail (no sender, no Subject: the mail gets no
answer), so that defect is a finding too, as is text the store could not take.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import tnefparse.tnef  # noqa: F401  # imported here, not on first use, so atheris instruments it

from fuzz.targets import Finding, corpus_dir, storable
from fuzz.targets.tnef import make_tnef
from mailgw.inbound.mail import InboundMail, parse_mail

ALLOWED: tuple[type[BaseException], ...] = ()  # parse_mail raises nothing
ENVELOPES = (None, "", "alice@example.com", "MAILER-DAEMON@example.org")


def check(mail: InboundMail) -> None:
    """What intake relies on, whatever the bytes."""
    internal = [d for d in mail.defects if d.startswith("InternalError")]
    if internal:
        raise Finding(f"parse_mail hit its last line of defence: {internal}")
    if mail.is_auto_reply != (mail.auto_reply_reason is not None):
        raise Finding("auto-reply verdict without a reason (or the reverse)")
    for name in ("from_addr", "subject", "message_id", "auto_reply_reason", "text_body"):
        storable(name, getattr(mail, name))
    for att in mail.attachments + mail.nested_attachments:
        storable("attachment filename", att.filename)
        storable("attachment content type", att.content_type)
        if att.size != len(att.data):
            raise Finding(f"attachment {att.part}: size {att.size} != {len(att.data)} bytes")
    mail.documents()
    mail.sounds()


def one_input(data: bytes) -> None:
    """Byte 0 picks the envelope sender and the header-size limit; the rest is the mail."""
    if not data:
        return
    envelope = ENVELOPES[data[0] & 3]
    max_header = 64 if data[0] & 4 else 256 * 1024  # also the path without the registry
    check(parse_mail(data[1:], envelope_from=envelope, max_header_bytes=max_header))


def _outlook(blob: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["Subject"] = "FGB45L:0170709901"
    msg.set_content("see attachment")
    msg.add_attachment(blob, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return msg.as_bytes()


def seeds() -> Iterator[tuple[str, bytes]]:
    corpus = corpus_dir()
    if corpus is not None:
        for path in sorted((corpus / "emails").glob("*.eml")):
            yield path.name, b"\x00" + path.read_bytes()
    yield "winmail.eml", b"\x00" + _outlook(make_tnef([("scan.pdf", b"%PDF-1.4 x"),
                                                       ("n.txt", b"hi")]))
    yield "bounce.eml", b"\x01" + (
        b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\ngone\r\n--b\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n")
