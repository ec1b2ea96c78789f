"""What an attachment is: by its type, its name and its magic bytes.

Senders mislabel files (a PDF as application/octet-stream, a scan named ``.PDF.``), so the
kind is decided from all three; a mislabelled PDF is still a PDF.
"""

from __future__ import annotations

from mailgw.inbound.model import (
    KIND_AUDIO,
    KIND_IMAGE,
    KIND_LIST,
    KIND_OTHER,
    KIND_PDF,
    KIND_TIFF,
)

_AUDIO_EXT = (".wav", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".amr", ".flac", ".aac", ".au")
_SMIME_SIGNATURES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_GENERIC_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/x-download",
        "application/download",
        "application/force-download",
        "application/binary",
        "application/unknown",
    }
)
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})


def _is_pdf_magic(data: bytes) -> bool:
    # PDF readers accept the header anywhere in the first KB (some producers add junk).
    return data.startswith(b"%PDF-") or b"%PDF-" in data[:1024]


def _is_tiff_magic(data: bytes) -> bool:
    return data[:4] in (b"II*\x00", b"MM\x00*")


def _is_audio_magic(data: bytes) -> bool:
    return (
        (data[:4] == b"RIFF" and data[8:12] == b"WAVE")
        or data[:3] == b"ID3"
        or data[:4] == b"OggS"
        or data[:6] == b"#!AMR\n"
        or data[:4] == b"fLaC"
        or data[4:11] == b"ftypM4A"
    )


def _is_image_magic(data: bytes) -> bool:
    return (
        data[:8] == b"\x89PNG\r\n\x1a\n"
        or data[:3] == b"\xff\xd8\xff"
        or data[:6] in (b"GIF87a", b"GIF89a")
    )


def kind(base_type: str, filename: str | None, data: bytes) -> str:
    """Classify by type, name and magic bytes; a mislabelled PDF is still a PDF."""
    name = (filename or "").lower().rstrip(". ")
    main = base_type.split("/", 1)[0]
    if base_type in _SMIME_SIGNATURES or name.endswith(".p7s"):
        return KIND_OTHER
    if main in ("message", "multipart"):
        return KIND_OTHER
    if base_type in TNEF_TYPES or name == "winmail.dat":
        return KIND_OTHER  # a container: its files are read by tnef.tnef_attachments
    if base_type in ("application/pdf", "application/x-pdf") or name.endswith(".pdf"):
        return KIND_PDF
    if _is_pdf_magic(data):
        return KIND_PDF
    if base_type == "image/tiff" or name.endswith((".tif", ".tiff")) or _is_tiff_magic(data):
        return KIND_TIFF
    if main == "audio" or name.endswith(_AUDIO_EXT) or _is_audio_magic(data):
        return KIND_AUDIO
    if main == "image" or (base_type in _GENERIC_TYPES and _is_image_magic(data)):
        return KIND_IMAGE
    if name.endswith((".txt", ".csv")) or base_type in ("text/csv", "text/comma-separated-values"):
        return KIND_LIST
    return KIND_OTHER
