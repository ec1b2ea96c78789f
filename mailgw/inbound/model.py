"""What the parser hands to intake: :class:`InboundMail`, its :class:`Attachment` records and
the attachment kinds. Plain frozen data, so every other inbound module can build on it
without importing the parser."""

from __future__ import annotations

from dataclasses import dataclass, field

KIND_PDF = "pdf"
KIND_TIFF = "tiff"
KIND_IMAGE = "image"
KIND_AUDIO = "audio"
KIND_LIST = "list"
KIND_OTHER = "other"


@dataclass(frozen=True)
class Attachment:
    """One attachment as intake sees it; ``data`` is the decoded payload."""

    filename: str | None
    content_type: str
    size: int
    kind: str
    data: bytes = field(repr=False)
    disposition: str | None = None
    part: str = "1"
    inline_image: bool = False
    nested: bool = False


@dataclass(frozen=True)
class InboundMail:
    """What intake needs from a mail; built only by :func:`mailgw.inbound.mail.parse_mail`."""

    from_addr: str | None
    subject: str | None
    message_id: str | None
    is_auto_reply: bool
    auto_reply_reason: str | None
    attachments: tuple[Attachment, ...]
    nested_attachments: tuple[Attachment, ...]
    text_body: str
    partial: bool = False
    defects: tuple[str, ...] = ()

    def documents(self) -> list[Attachment]:
        """PDFs to fax: the mail's own, else those of a forwarded mail (a user forwarding)."""
        own = [a for a in self.attachments if a.kind == KIND_PDF and not a.inline_image]
        if own:
            return own
        return [a for a in self.nested_attachments if a.kind == KIND_PDF and not a.inline_image]

    def sounds(self) -> list[Attachment]:
        """Sound files for a voice call, with the same forwarded-mail fallback as documents."""
        own = [a for a in self.attachments if a.kind == KIND_AUDIO]
        if own:
            return own
        return [a for a in self.nested_attachments if a.kind == KIND_AUDIO]
