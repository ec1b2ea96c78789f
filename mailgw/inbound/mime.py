"""The MIME tree: parse the bytes, walk the parts, collect attachments and the text body.

Built on the stdlib ``email`` package with the guarded policy of :mod:`.headers`. Every part
accessor that is known to fail on malformed input is wrapped, with a fallback that reads the
raw header; the parse itself is fed in slices to keep the memory peak low on large mails.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email._encoded_words import decode_b  # what Message.get_payload uses for base64
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.message import Message

from mailgw.inbound.charset import clean_text, decode_bytes, to_bytes
from mailgw.inbound.headers import (
    ENCODED_WORD,
    POLICY,
    decode_header_text,
    param_from_raw,
    raw_header,
    safe,
    unfold,
)
from mailgw.inbound.model import KIND_IMAGE, KIND_TIFF, Attachment
from mailgw.inbound.sniff import kind

TEXT_BODY_MAX_CHARS = 64 * 1024
MAX_MIME_DEPTH = 64  # deeper nesting is hostile; stop before Python's recursion limit
FEED_CHUNK = 64 * 1024

# --------------------------------------------------------------------------- parsing


def header_section_length(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
    return min(ends) if ends else len(raw)


def _feed(raw: bytes, headersonly: bool = False) -> Message:
    """``BytesParser(policy=POLICY).parsebytes(raw)``, fed in slices.

    ``parsebytes`` decodes the whole mail to a str and reads it back through a ``StringIO``
    (four bytes per character): about 80 MB at once for a 10 MB mail, where feeding the
    same parser slice by slice peaks near 30 MB. The feed parser splits lines across feeds
    itself, so the tree is the same.
    """
    parser = BytesFeedParser(policy=POLICY)
    if headersonly:
        parser._set_headersonly()  # type: ignore[attr-defined]  # as BytesHeaderParser does
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def parse(raw: bytes) -> tuple[Message, list[str]]:
    """Full parse; if the stdlib fails (deep nesting, recursion), keep at least the headers."""
    try:
        return _feed(raw), []
    except Exception as exc:  # noqa: BLE001
        problem = f"ParseError: {type(exc).__name__}"
    try:
        return _feed(raw, headersonly=True), [problem]
    except Exception as exc:  # noqa: BLE001
        return Message(policy=POLICY), [problem, f"HeaderParseError: {type(exc).__name__}"]


# --------------------------------------------------------------------------- one part


def _content_type(part: Message) -> str:
    ctype = safe(part.get_content_type, None)
    if ctype:
        return clean_text(ctype)  # 8-bit bytes in a long header stay surrogates (fuzz finding)
    raw = raw_header(part, "content-type") or ""
    m = re.match(r"\s*([!-~]+/[!-~]+?)\s*(?:;|$)", unfold(raw))
    return m.group(1).lower() if m else "text/plain"


def _base_type(ctype: str) -> str:
    """'application/pdf name=""' (a missing ';') → 'application/pdf', for kind decisions."""
    return re.split(r"[\s;]", ctype.strip(), maxsplit=1)[0].lower()


def _maintype(ctype: str) -> str:
    return ctype.split("/", 1)[0]


def _filename(part: Message) -> str | None:
    name = safe(part.get_filename, None)
    name = clean_text(name) if isinstance(name, str) and name else None
    if name and ENCODED_WORD.search(name):
        name = clean_text(decode_header_text(name))
    if name and "\ufffd" not in name:
        return name
    # No name, or the stdlib replaced raw 8-bit bytes: read the raw parameters ourselves.
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = raw_header(part, header)
        found = param_from_raw(raw, param) if raw else None
        if found and (name is None or found.count("\ufffd") < name.count("\ufffd")):
            return found
    return name


def _disposition(part: Message) -> str | None:
    disp = safe(part.get_content_disposition, None)
    if disp:
        return disp
    raw = raw_header(part, "content-disposition")
    if raw:
        token = re.split(r"[\s;]", unfold(raw).strip(), maxsplit=1)[0].lower()
        return token or None
    return None


def _is_multipart(part: Message) -> bool:
    return bool(safe(part.is_multipart, False))


def _children(part: Message) -> list[Message]:
    payload = safe(part.get_payload, [])
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _message_body(part: Message) -> bytes:
    """A message/* part's body as BytesGenerator writes it (compat32, LF): the corpus's size."""
    buf = io.BytesIO()
    try:
        BytesGenerator(buf, mangle_from_=False, policy=policy.compat32).flatten(part)
    except Exception:  # noqa: BLE001
        payload = safe(lambda: part.get_payload(decode=False), "")
        return to_bytes(payload) if isinstance(payload, str) else b""
    raw = buf.getvalue()
    cut = raw.find(b"\n\n")
    return raw[cut + 2 :] if cut >= 0 else raw


def _base64_payload(part: Message) -> bytes | None:
    """``part.get_payload(decode=True)`` for an ASCII base64 body (None for anything else),
    without its transient copies: it splits the body into a list of lines (≈ 110 B per 78 B
    line) and joins them again before decoding, ≈ 45 MB at once for a 10 MB attachment.
    Same steps otherwise: line breaks dropped, then the stdlib's own ``decode_b``."""
    payload = part._payload  # type: ignore[attr-defined]  # the body as parsed
    if not isinstance(payload, str) or not payload.isascii() or part.is_multipart():
        return None
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    out = io.BytesIO()
    for start in range(0, len(payload), FEED_CHUNK):
        out.write(payload[start : start + FEED_CHUNK].encode("ascii").translate(None, b"\r\n"))
    value, defects = decode_b(out.getvalue())
    for defect in defects:
        part.policy.handle_defect(part, defect)
    return value


def _leaf_bytes(part: Message) -> bytes:
    lean = safe(lambda: _base64_payload(part), None)
    if lean is not None:
        return lean
    data = safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    payload = safe(lambda: part.get_payload(decode=False), "")
    return to_bytes(payload) if isinstance(payload, str) else b""


# --------------------------------------------------------------------------- tree walk


@dataclass
class Walk:
    """Mutable state of one walk over the MIME tree."""

    nested: bool
    attachments: list[Attachment] = field(default_factory=list)
    defects: set[str] = field(default_factory=set)
    partial: bool = False
    report: str | None = None
    text_part: Message | None = None


_REPORT_TYPES = frozenset(
    {
        "multipart/report",
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
        "message/feedback-report",
    }
)


def _is_attachment(part: Message, ctype: str, disp: str | None, filename: str | None) -> bool:
    return disp == "attachment" or bool(filename) or _maintype(ctype) not in ("text", "multipart")


def walk(part: Message, path: str, state: Walk, parent: str | None, depth: int = 0) -> None:
    """The corpus rule: leaves with an attachment disposition, a name, or a non-text type."""
    if depth > MAX_MIME_DEPTH:
        state.defects.add("MimeDepthLimitExceeded")
        return
    for d in safe(lambda: list(part.defects), []):
        state.defects.add(type(d).__name__)
    ctype = _content_type(part)
    base = _base_type(ctype)
    if base in _REPORT_TYPES and state.report is None:
        state.report = base
    if base == "message/partial":
        state.partial = True
    maintype = _maintype(ctype)
    if _is_multipart(part) and maintype != "message":
        for i, sub in enumerate(_children(part), 1):
            walk(sub, f"{path}.{i}", state, base, depth + 1)
        return
    disp = _disposition(part)
    filename = _filename(part)
    if not _is_attachment(part, ctype, disp, filename):
        if state.text_part is None and base == "text/plain":
            state.text_part = part
        return
    data = (
        _message_body(part) if maintype == "message" or _is_multipart(part) else (_leaf_bytes(part))
    )
    found = kind(base, filename, data)
    inline_image = found in (KIND_IMAGE, KIND_TIFF) and (
        disp == "inline"
        or (parent == "multipart/related" and raw_header(part, "content-id") is not None)
    )
    state.attachments.append(
        Attachment(
            filename=filename,
            content_type=ctype,
            size=len(data),
            kind=found,
            data=data,
            disposition=disp,
            part=path,
            inline_image=inline_image,
            nested=state.nested,
        )
    )


def forwarded(part: Message, path: str, depth: int = 0) -> Iterator[tuple[Message, str]]:
    """Inner messages of message/rfc822 (or message/global) parts, depth first."""
    if depth > MAX_MIME_DEPTH:
        return
    ctype = _base_type(_content_type(part))
    if ctype in ("message/rfc822", "message/global") and _is_multipart(part):
        inner = _children(part)
        if inner:
            yield inner[0], f"{path}.m"
            yield from forwarded(inner[0], f"{path}.m", depth + 1)
    elif _is_multipart(part):
        for i, sub in enumerate(_children(part), 1):
            yield from forwarded(sub, f"{path}.{i}", depth + 1)


def text_body(part: Message | None) -> str:
    if part is None:
        return ""
    data = _leaf_bytes(part)[: TEXT_BODY_MAX_CHARS * 4]
    charset = safe(lambda: part.get_content_charset(), None)
    text = decode_bytes(data, charset or "us-ascii")
    if not text.isascii():  # UTF-7 decodes to lone surrogates the store refuses (fuzz finding)
        text = clean_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")[:TEXT_BODY_MAX_CHARS]
