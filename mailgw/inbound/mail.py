"""Raw mail bytes → :class:`InboundMail` (sender, subject, attachments, auto-reply verdict).

Mail comes from strangers and broken clients, so :func:`parse_mail` never raises. The work is
done by one module per job, all pure:

- :mod:`.charset`: bytes → text for the charset labels found in mail;
- :mod:`.headers`: RFC 2047 words, RFC 2231 parameters, From, Subject, Message-ID;
- :mod:`.mime`: the parse and the walk over the MIME tree (attachments, text body);
- :mod:`.sniff`: what an attachment is (type, name, magic bytes);
- :mod:`.tnef`: the files inside Outlook's winmail.dat;
- :mod:`.autoreply`: whether a machine wrote the mail (RFC 3834).

This module stays the public API: callers import from ``mailgw.inbound.mail``.
"""

from __future__ import annotations

from mailgw.inbound.autoreply import LOOP_HEADER, auto_reply_reason
from mailgw.inbound.charset import decode_bytes
from mailgw.inbound.headers import (
    decode_header_text,
    read_from_addr,
    read_message_id,
    read_subject,
)
from mailgw.inbound.mime import Walk, forwarded, header_section_length, parse, text_body, walk
from mailgw.inbound.model import (
    KIND_AUDIO,
    KIND_IMAGE,
    KIND_LIST,
    KIND_OTHER,
    KIND_PDF,
    KIND_TIFF,
    Attachment,
    InboundMail,
)
from mailgw.inbound.tnef import is_tnef, tnef_attachments

__all__ = [
    "KIND_AUDIO",
    "KIND_IMAGE",
    "KIND_LIST",
    "KIND_OTHER",
    "KIND_PDF",
    "KIND_TIFF",
    "LOOP_HEADER",
    "Attachment",
    "InboundMail",
    "decode_bytes",
    "decode_header_text",
    "parse_mail",
]


def parse_mail(
    raw: bytes,
    *,
    envelope_from: str | None = None,
    max_header_bytes: int = 256 * 1024,
) -> InboundMail:
    """Turn raw mail bytes into an :class:`InboundMail`; never raises.

    ``envelope_from`` is the SMTP MAIL FROM: ``None`` when unknown (IMAP), ``''`` for the null
    return path of bounces. Over ``max_header_bytes`` of headers, the stdlib's header
    registry (slow, recursive on huge address lists) is bypassed for a plain decoding.
    """
    try:
        return _parse_mail(raw, envelope_from, max_header_bytes)
    except Exception as exc:  # noqa: BLE001 - last line of defence: intake must get an answer
        return InboundMail(
            from_addr=None,
            subject=None,
            message_id=None,
            is_auto_reply=envelope_from is not None and not envelope_from.strip("<> "),
            auto_reply_reason=None,
            attachments=(),
            nested_attachments=(),
            text_body="",
            defects=(f"InternalError: {type(exc).__name__}",),
        )


def _parse_mail(raw: bytes, envelope_from: str | None, max_header_bytes: int) -> InboundMail:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    elif not isinstance(raw, bytes):
        raw = bytes(raw or b"")
    defects: list[str] = []
    use_registry = True
    if header_section_length(raw) > max_header_bytes:
        use_registry = False
        defects.append("HeaderSectionTooLarge")
    msg, parse_problems = parse(raw)
    defects.extend(parse_problems)

    top = Walk(nested=False)
    walk(msg, "1", top, None)
    nested = Walk(nested=True)
    for inner, path in forwarded(msg, "1"):
        walk(inner, path, nested, None)
    for att in top.attachments:
        if is_tnef(att):
            nested.attachments.extend(tnef_attachments(att))

    subject = read_subject(msg, use_registry)
    from_addr = read_from_addr(msg, use_registry)
    reason = auto_reply_reason(msg, envelope_from, from_addr, subject, top.report)
    defects.extend(sorted(top.defects))
    return InboundMail(
        from_addr=from_addr,
        subject=subject,
        message_id=read_message_id(msg),
        is_auto_reply=reason is not None,
        auto_reply_reason=reason,
        attachments=tuple(top.attachments),
        nested_attachments=tuple(nested.attachments),
        text_body=text_body(top.text_part),
        partial=top.partial,
        defects=tuple(defects),
    )
