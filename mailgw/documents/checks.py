"""Document checks: can this document become fax pages, how many; is this sound usable.

The parsing and the rendering run in the sandbox (a child process with limits): a PDF or
picture is rendered to fax pages there (mailgw.documents.render), so the page count is the number of
pages rendered. An office file is first converted by LibreOffice (mailgw.documents.office), when it
is installed, then rendered like any PDF.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field, replace

from mailgw.documents import office
from mailgw.documents.sandbox import Limits, SandboxFailure, run


@dataclass(frozen=True)
class DocumentCheck:
    usable: bool
    pages: int | None = None
    duration: float | None = None
    error: str | None = None  # for logs and `mailgw parse`, in English
    reason: str | None = None  # a key of mailgw.codes.DETAILS, for the user
    params: tuple[tuple[str, object], ...] = ()  # for the reason's sentence (page, limit)
    document: bytes | None = field(default=None, repr=False)  # the PDF to send, when it
    # is not the attachment itself (a picture's pages, an office file converted)


def _reason(error: str) -> str:
    text = error.lower()
    if "encrypted" in text or "password" in text:
        return "encrypted"
    if "not a pdf" in text:
        return "not_pdf"
    if "no page" in text:
        return "no_pages"
    return "broken"


def check_pdf(data: bytes, limits: Limits) -> DocumentCheck:
    """Rendered to fax pages in the sandbox: a render check, the PDF itself is sent (so the
    quality does not matter here)."""
    if b"%PDF-" not in data[:1024]:
        return DocumentCheck(False, error="not a PDF", reason="not_pdf")
    return _checked(render(data, "pdf", limits))


def check_picture(data: bytes, limits: Limits, quality: str = "high") -> DocumentCheck:
    """A JPEG, PNG or TIFF rendered to fax pages; `document` is their PDF (lossless)."""
    return _checked(render(data, "picture", limits, quality, output="pdf"))


def check_office(data: bytes, filename: str | None, limits: Limits) -> DocumentCheck:
    """Converted to PDF by LibreOffice when it is installed (refused with the accepted
    types when it is not), then rendered like any PDF; `document` is that PDF."""
    if office.soffice() is None:
        return DocumentCheck(False, error="LibreOffice (soffice) is not installed",
                             reason="office_unavailable")
    try:
        pdf = office.to_pdf(data, filename, timeout=limits.wall)
    except office.OfficeError as exc:
        return DocumentCheck(False, error=str(exc), reason="office_failed")
    return replace(check_pdf(pdf, limits), document=pdf)


def render(data: bytes, kind: str, limits: Limits, quality: str = "high",
           output: str = "auto") -> dict[str, object]:
    """The sandbox's answer for one document (mailgw.documents.render.render_task); a sandbox that
    stopped the work answers {"usable": False, "reason": "unreadable"}."""
    params = {"kind": kind, "quality": quality, "max_pages": limits.max_pages,
              "output": output}
    try:
        return run("render", json.dumps(params).encode() + b"\n" + data, limits)
    except SandboxFailure as exc:
        return {"usable": False, "pages": None, "reason": "unreadable",
                "error": f"the document could not be rendered: {exc}"}


def _checked(answer: dict[str, object]) -> DocumentCheck:
    pages = answer.get("pages")
    usable = bool(answer.get("usable"))
    error = str(answer["error"]) if answer.get("error") else None
    params = answer.get("params")
    document = answer.get("document")
    return DocumentCheck(
        usable, pages if isinstance(pages, int) else None, error=error,
        reason=None if usable else str(answer.get("reason") or _reason(error or "broken")),
        params=tuple(params.items()) if isinstance(params, dict) else (),
        document=base64.b64decode(document) if isinstance(document, str) else None)


@dataclass(frozen=True)
class SoundCheck:
    """A sound probed and converted in the sandbox; `audio` is the drivers' format (WAV)."""

    usable: bool
    duration: float | None = None
    error: str | None = None  # for logs and `mailgw parse`, in English
    reason: str | None = None  # a key of mailgw.codes.DETAILS, for the user
    audio: bytes | None = field(default=None, repr=False)
    format: str | None = None  # wav | mp3 | m4a | ogg | amr
    peak_db: float | None = None


SOUND_RATE = 8000  # the drivers' format: 8 kHz mono 16-bit PCM WAV


def check_sound(data: bytes, limits: Limits, *, max_seconds: float = 45.0,
                rate: int = SOUND_RATE) -> SoundCheck:
    """Probe and convert a WAV, MP3, M4A, OGG or AMR file in the sandbox (PyAV, documents.audio).

    Refused (with a DETAILS key): empty, not audio, another format, damaged, longer than
    `max_seconds`, silent; a sandbox that stopped the work is `unreadable`. No system
    program is involved, so nothing here is ever our temporary trouble but the sandbox's.
    """
    if not data.strip(b"\0 \r\n\t"):
        return SoundCheck(False, error="the file is empty", reason="sound_empty")
    params = {"rate": rate, "max_seconds": max_seconds}
    try:
        answer = run("audio", json.dumps(params).encode() + b"\n" + data, limits)
    except SandboxFailure as exc:
        return SoundCheck(False, error=f"the sound could not be read: {exc}",
                          reason="unreadable")
    duration, peak, fmt = answer.get("duration"), answer.get("peak_db"), answer.get("format")
    check = SoundCheck(
        False, duration=float(duration) if isinstance(duration, int | float) else None,
        error=str(answer["error"]) if answer.get("error") else None,
        format=fmt if isinstance(fmt, str) else None,
        peak_db=float(peak) if isinstance(peak, int | float) else None)
    if not answer.get("usable") or not isinstance(answer.get("wav"), str):
        return replace(check, reason=str(answer.get("reason") or "sound_empty"))
    return replace(check, usable=True, audio=base64.b64decode(str(answer["wav"])))


def merge_pdfs(parts: list[bytes], limits: Limits) -> bytes | None:
    """One PDF from several usable ones (None if the merge fails); one part is returned as is."""
    if len(parts) == 1:
        return parts[0]
    framed = b"".join(struct.pack(">I", len(p)) + p for p in parts)
    try:
        answer = run("pdfmerge", framed, limits)
        return base64.b64decode(str(answer["pdf"]))
    except (SandboxFailure, KeyError, ValueError):
        return None
