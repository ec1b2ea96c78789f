"""inbound: raw mail bytes → :class:`InboundMail`, pure (no store, no I/O); see :mod:`.mail`."""

from mailgw.inbound.mail import (
    KIND_AUDIO,
    KIND_IMAGE,
    KIND_LIST,
    KIND_OTHER,
    KIND_PDF,
    KIND_TIFF,
    Attachment,
    InboundMail,
    parse_mail,
)

__all__ = [
    "KIND_AUDIO",
    "KIND_IMAGE",
    "KIND_LIST",
    "KIND_OTHER",
    "KIND_PDF",
    "KIND_TIFF",
    "Attachment",
    "InboundMail",
    "parse_mail",
]
