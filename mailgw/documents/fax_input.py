"""Which attachments become fax pages, and which refusals of a document are over a limit.

Pure (the decision uses it). A fax is made of the mail's PDFs, TIFFs, JPEGs and PNGs, in
the mail's order, and of its office files (Word, Excel, OpenDocument text, RTF) when
LibreOffice can convert them. Pictures shown inside the text (`inline_image`: an inline
disposition, or a part of multipart/related with a Content-ID: logos, signatures) are not
documents, nor are GIF, BMP or other pictures. As for PDFs before, a forwarded mail's
documents are used when the mail has none of its own.
"""

from __future__ import annotations

from typing import Literal

from mailgw.inbound.mail import KIND_IMAGE, KIND_PDF, KIND_TIFF, Attachment, InboundMail

FaxKind = Literal["pdf", "picture", "office"]

OFFICE_EXTENSIONS = (".doc", ".docx", ".odt", ".rtf", ".xls", ".xlsx")
OFFICE_TYPES = frozenset({
    "application/msword", "application/rtf", "text/rtf", "application/x-rtf",
    "application/vnd.ms-excel", "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
})
# refusals measured against a stated limit: 94, the others 93 (mailgw.documents.render's caps)
LIMIT_REASONS = frozenset({"page_too_large", "bitmap_too_large", "content_too_large"})


def _is_jpeg_or_png(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n"


def office_extension(att: Attachment) -> str | None:
    """The office file's extension (from its name, else its type), None if not one."""
    name = (att.filename or "").lower().rstrip(". ")
    for ext in OFFICE_EXTENSIONS:
        if name.endswith(ext):
            return ext
    base = att.content_type.split(";")[0].strip().lower()
    if base in OFFICE_TYPES:
        return {"application/msword": ".doc", "application/vnd.ms-excel": ".xls",
                "application/vnd.oasis.opendocument.text": ".odt"}.get(
            base, ".docx" if "wordprocessingml" in base else
            ".xlsx" if "spreadsheetml" in base else ".rtf")
    return None


def fax_kind(att: Attachment) -> FaxKind | None:
    if att.inline_image:
        return None
    if att.kind == KIND_PDF:
        return "pdf"
    if att.kind == KIND_TIFF or (att.kind == KIND_IMAGE and _is_jpeg_or_png(att.data)):
        return "picture"
    if office_extension(att) is not None:
        return "office"
    return None


def fax_documents(mail: InboundMail) -> list[Attachment]:
    """The attachments to fax, in order: the mail's own, else a forwarded mail's."""
    own = [a for a in mail.attachments if fax_kind(a)]
    return own or [a for a in mail.nested_attachments if fax_kind(a)]
