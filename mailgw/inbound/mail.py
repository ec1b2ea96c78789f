"""Raw mail bytes → :class:`InboundMail` (sender, subject, attachments, auto-reply verdict).

Built on the stdlib ``email`` package with ``policy.default``. Mail comes from strangers and
broken clients, so :func:`parse_mail` never raises: every stdlib call that is known to fail on
malformed input (header registry, parameter parsing, payload decoding) is wrapped, and a
plain-text fallback works from the raw header bytes instead.
"""

from __future__ import annotations

import binascii
import codecs
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email._encoded_words import decode_b  # what Message.get_payload uses for base64
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses
from typing import Any, TypeVar

from mailgw.inbound import tnef as tnef_guard

__all__ = ["Attachment", "InboundMail", "parse_mail"]

TEXT_BODY_MAX_CHARS = 64 * 1024
MAX_MIME_DEPTH = 64  # deeper nesting is hostile; stop before Python's recursion limit
LOOP_HEADER = "X-Mailgw-Loop"

KIND_PDF = "pdf"
KIND_TIFF = "tiff"
KIND_IMAGE = "image"
KIND_AUDIO = "audio"
KIND_LIST = "list"
KIND_OTHER = "other"

_T = TypeVar("_T")
_D = TypeVar("_D")


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
    """What intake needs from a mail; built only by :func:`parse_mail`."""

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


# --------------------------------------------------------------------------- small helpers


def _safe(fn: Callable[[], _T], default: _D) -> _T | _D:
    """Call a stdlib accessor that may raise on hostile input; fall back instead."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - the stdlib raises many types on malformed mail
        return default


def _to_bytes(text: str) -> bytes:
    """Undo the parser's ASCII+surrogateescape view of the raw bytes."""
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if _has_surrogates(text) else "strict")


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")


def _clean_text(text: str) -> str:
    """Turn raw 8-bit bytes (lone surrogates) into text, so strings are safe to print."""
    if not _has_surrogates(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        pass

    def fix(m: re.Match[str]) -> str:
        return decode_bytes(m.group().encode("ascii", "surrogateescape"), None)

    fixed = _SURROGATE_RUN.sub(fix, text)
    return fixed.encode("utf-8", "replace").decode("utf-8")


def _unfold(text: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", text).replace("\r", "").replace("\n", "")


# --------------------------------------------------------------------------- charsets

_UNKNOWN_CHARSETS = frozenset(
    {"", "none", "unknown", "unknown-8bit", "x-unknown", "default", "8bit", "x-user-defined"}
)
_CHARSET_ALIASES: dict[str, tuple[str, ...]] = {
    # Mail labels that Python does not know, or that are supersets in practice.
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_3", "@iso2022jp-cp932"),
    "iso-2022-jp-ms": ("@iso2022jp-cp932",),
    "cp50220": ("@iso2022jp-cp932",),
    "cp50221": ("@iso2022jp-cp932",),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932",),
    "x-sjis": ("cp932",),
    "windows-31j": ("cp932",),
    "ms_kanji": ("cp932",),
    "euc-jp": ("euc_jp", "euc_jis_2004", "cp932"),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "euc-kr": ("euc_kr", "cp949"),
    "gb2312": ("gb2312", "gb18030"),
    "gbk": ("gbk", "gb18030"),
    "x-gbk": ("gb18030",),
    "big5": ("big5", "big5hkscs", "cp950"),
    "tis-620": ("cp874",),
    "iso-8859-11": ("cp874",),
    "iso-8859-1": ("cp1252", "latin-1"),
    "latin1": ("cp1252", "latin-1"),
    "us-ascii": ("utf-8", "cp1252", "latin-1"),
    "ascii": ("utf-8", "cp1252", "latin-1"),
    "x-mac-cyrillic": ("mac_cyrillic",),
    "x-mac-roman": ("mac_roman",),
    "macintosh": ("mac_roman",),
    "utf8": ("utf-8",),
    "unicode-1-1-utf-7": ("utf-7",),
}
_FALLBACK_CODECS = ("utf-8", "cp1252", "latin-1")


def _charset_candidates(charset: str | None) -> tuple[str, ...]:
    """Codecs to try, in order, for a charset label found in mail."""
    name = (charset or "").strip().strip("\"'").lower().split("*", 1)[0]
    if name in _UNKNOWN_CHARSETS:
        return _FALLBACK_CODECS
    # iso-8859-8-i / -e only say "logical / explicit order": same bytes as the base charset.
    m = re.fullmatch(r"(iso[-_]?8859[-_]\d+)[-_][ie]", name)
    if m:
        name = m.group(1)
    if name in _CHARSET_ALIASES:
        return _CHARSET_ALIASES[name]
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # unknown, or a NUL in the label (fuzz finding)
        return _FALLBACK_CODECS
    if codec in ("latin-1", "iso8859-1", "ascii"):
        return _CHARSET_ALIASES["us-ascii"] if codec == "ascii" else ("cp1252", "latin-1")
    if codec == "euc_kr":
        return ("euc_kr", "cp949")
    if codec == "iso2022_jp":
        return _CHARSET_ALIASES["iso-2022-jp"]
    return (codec,)


def _jis_to_sjis(j1: int, j2: int) -> bytes:
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 < 0x5F else 0xB0)
    if j1 & 1:
        s2 = j2 + (0x1F if j2 < 0x60 else 0x20)
    else:
        s2 = j2 + 0x7E
    return bytes((s1, s2))


def _iso2022jp_cp932(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (CP50220): JIS X 0208 plus NEC/IBM rows, via CP932.

    Python's iso2022_jp codecs reject the NEC row-13 characters (№, ①, ㈱ ...) that Outlook
    emits, so the stdlib leaves such Subjects undecoded.
    """
    out: list[str] = []
    buf = bytearray()
    mode = "ascii"
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:
            esc3 = data[i + 1 : i + 3]
            esc4 = data[i + 1 : i + 4]
            if esc3 in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
            elif esc3 == b"(I":
                mode, i = "kana", i + 3
            elif esc3 in (b"$@", b"$B"):
                mode, i = "jis", i + 3
            elif esc4 in (b"$(Q", b"$(O"):
                mode, i = "jis", i + 4
            elif esc4 == b"$(D":
                mode, i = "other", i + 4
            else:
                buf.append(b)
                i += 1
            continue
        if b == 0x0E:
            mode, i = "kana", i + 1
            continue
        if b == 0x0F:
            mode, i = "ascii", i + 1
            continue
        if mode == "ascii" or not 0x21 <= b <= 0x7E:
            buf.append(b)
            i += 1
        elif mode == "kana":
            buf.append(b | 0x80)
            i += 1
        elif i + 1 < n and 0x21 <= data[i + 1] <= 0x7E:
            if mode == "jis":
                buf += _jis_to_sjis(b, data[i + 1])
            else:
                out.append(buf.decode("cp932", "replace"))
                buf.clear()
                out.append("\ufffd")
            i += 2
        else:
            buf.append(b)
            i += 1
    out.append(buf.decode("cp932", "replace"))
    return "".join(out)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the best codec for a mail charset label; never raises, never drops text.

    Falls back to U+FFFD replacement characters rather than losing undecodable bytes.
    """
    candidates = _charset_candidates(charset)
    for codec in candidates:
        try:
            if codec == "@iso2022jp-cp932":
                text = _iso2022jp_cp932(data)
                if "\ufffd" in text and codec != candidates[-1]:
                    continue
                return text
            return data.decode(codec)
        except (UnicodeError, LookupError):
            continue
    first = candidates[0]
    if first == "@iso2022jp-cp932":
        return _iso2022jp_cp932(data)
    try:
        return data.decode(first, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


# --------------------------------------------------------------------------- RFC 2047

_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_b(text: bytes) -> bytes:
    """Lenient base64: ignore junk characters and repair bad padding."""
    clean = _B64_JUNK.sub(b"", text)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except binascii.Error:
        return b""


def _decode_q(text: bytes) -> bytes:
    try:
        return binascii.a2b_qp(text, header=True)
    except binascii.Error:
        return text.replace(b"_", b" ")


def _decode_plain(text: str) -> str:
    """Text outside encoded words: raw 8-bit bytes are usually UTF-8, else a legacy charset."""
    return _clean_text(text)


def decode_header_text(value: str) -> str:
    """Unfold and decode RFC 2047 words, tolerating the breakage seen in real mail.

    Handles unknown or non-standard charsets, bad base64 padding, encoded words glued to
    text (as in unquoted parameters), multibyte characters split across adjacent words, and
    raw 8-bit bytes.
    """
    value = _unfold(value)
    pieces: list[str] = []
    pending_cs: str | None = None
    pending = bytearray()
    pos = 0

    def flush() -> None:
        nonlocal pending_cs
        if pending_cs is not None:
            pieces.append(decode_bytes(bytes(pending), pending_cs))
            pending.clear()
            pending_cs = None

    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        if gap and not (pending_cs is not None and gap.isspace()):
            flush()
            pieces.append(_decode_plain(gap))
        charset, enc, text = m.group(1), m.group(2).lower(), _to_bytes(m.group(3))
        raw = _decode_b(text) if enc == "b" else _decode_q(text)
        if pending_cs is not None and pending_cs != charset.lower():
            flush()
        pending_cs = charset.lower()
        pending += raw
        pos = m.end()
    flush()
    pieces.append(_decode_plain(value[pos:]))
    return "".join(pieces)


# --------------------------------------------------------------------------- header access

REGISTRY_MAX_CHARS = 512
_REGISTRY_CACHE_SIZE = 4096


class _GuardedPolicy(EmailPolicy):
    """``policy.default`` whose header registry cannot sink the parse.

    The registry's recursive-descent parser is quadratic on some inputs (runs of quotes) and
    overflows the stack on nested comments, even inside ``BytesParser`` (it reads each part's
    Content-Type, several times). So parses are cached, and a value that is too long for the
    registry, or that it cannot parse, is handed back as the plain string compat32 would
    give: every ``Message`` accessor still works on it, with the classic parameter parser.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if len(value) <= REGISTRY_MAX_CHARS:
            key = (name, value)
            cached = _REGISTRY_CACHE.get(key)
            if cached is not None:
                return cached
            try:
                header = super().header_fetch_parse(name, value)
            except Exception:  # noqa: BLE001 - RecursionError, IndexError, ...
                header = None
            if header is not None:
                if len(_REGISTRY_CACHE) >= _REGISTRY_CACHE_SIZE:
                    _REGISTRY_CACHE.clear()
                _REGISTRY_CACHE[key] = header
                return header
        return re.sub(r"\r?\n(?=[ \t])", "", value).rstrip("\r\n")


_REGISTRY_CACHE: dict[tuple[str, str], Any] = {}
_POLICY = _GuardedPolicy()


def _raw_header(msg: Message, name: str) -> str | None:
    """First raw value of a header as received (no registry parsing: cannot raise)."""
    lname = name.lower()
    try:
        for key, value in msg.raw_items():
            if key.lower() == lname:
                return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def _header_text(msg: Message, name: str) -> str | None:
    """A header as plain text for matching: unfolded, encoded words decoded, stripped."""
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    return _clean_text(decode_header_text(raw)).strip()


def _subject(msg: Message, use_registry: bool) -> str | None:
    raw = _raw_header(msg, "subject")
    if raw is None:
        return None
    ours = _clean_text(decode_header_text(raw))
    if not use_registry:
        return ours
    stdlib = _safe(lambda: str(msg["subject"]), None)
    # The stdlib gives up on unknown charsets (U+FFFD) and codec errors (leaves the raw word).
    if (
        stdlib is None
        or "\ufffd" in stdlib
        or _ENCODED_WORD.search(stdlib)
        or _has_surrogates(stdlib)
    ):
        return ours
    return stdlib


def _pick_address(addrs: list[str]) -> str | None:
    """The first real mailbox; an unquoted comma ("Doe, John <j@x>") yields a bogus "Doe"."""
    found = [a for a in (_clean_text(x).strip() for x in addrs) if a and a != "<>"]
    return next((a for a in found if "@" in a), found[0] if found else None)


def _from_addr(msg: Message, use_registry: bool) -> str | None:
    raw = _raw_header(msg, "from")
    if raw is None:
        return None
    if use_registry:
        header: Any = _safe(lambda: msg["from"], None)
        addrs = _safe(lambda: [str(a.addr_spec) for a in header.addresses], None)
        if addrs and _pick_address(addrs):
            return _pick_address(addrs)
    # The stdlib raised (or was bypassed): the classic, linear address parser on the raw value.
    unfolded = _unfold(_clean_text(raw))
    return _pick_address([addr for _name, addr in _safe(lambda: getaddresses([unfolded]), [])])


def _message_id(msg: Message) -> str | None:
    raw = _raw_header(msg, "message-id")
    if raw is None:
        return None
    value = " ".join(_clean_text(_unfold(raw)).split())
    return value or None


# --------------------------------------------------------------------------- MIME parts


def _content_type(part: Message) -> str:
    ctype = _safe(part.get_content_type, None)
    if ctype:
        return _clean_text(ctype)  # 8-bit bytes in a long header stay surrogates (fuzz finding)
    raw = _raw_header(part, "content-type") or ""
    m = re.match(r"\s*([!-~]+/[!-~]+?)\s*(?:;|$)", _unfold(raw))
    return m.group(1).lower() if m else "text/plain"


def _base_type(ctype: str) -> str:
    """'application/pdf name=""' (a missing ';') → 'application/pdf', for kind decisions."""
    return re.split(r"[\s;]", ctype.strip(), maxsplit=1)[0].lower()


def _maintype(ctype: str) -> str:
    return ctype.split("/", 1)[0]


_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def _raw_params(raw: str) -> list[tuple[str, str]]:
    params = []
    for m in _PARAM.finditer(";" + _unfold(raw).split(";", 1)[-1] if ";" in raw else ""):
        value = m.group(2).strip()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1] if value.endswith('"') else value[1:])
        params.append((m.group(1).lower(), value))
    return params


def _param_from_raw(raw: str, name: str) -> str | None:
    """A file name parameter read by hand, for what the stdlib parser gives up on.

    Covers unquoted encoded words (``name==?utf-8?B?...?=``) and RFC 2231 continuations.
    """
    params = _raw_params(raw)
    for key, value in params:
        if key == name and value:
            return _clean_text(decode_header_text(value))
    segments: list[tuple[int, bool, str]] = []
    for key, value in params:
        m = re.fullmatch(re.escape(name) + r"\*(\d+)?(\*)?", key)
        if m:
            index = int(m.group(1) or 0)
            extended = m.group(2) is not None or m.group(1) is None
            segments.append((index, extended, value))
    if not segments:
        return None
    segments.sort(key=lambda s: s[0])
    charset = "utf-8"
    data = bytearray()
    for n, (_index, extended, value) in enumerate(segments):
        if extended:
            if n == 0 and value.count("'") >= 2:
                charset, _lang, value = value.split("'", 2)
            data += _percent_decode(value)
        else:
            data += _to_bytes(value)
    return _clean_text(decode_bytes(bytes(data), charset or "utf-8")) or None


def _percent_decode(value: str) -> bytes:
    raw = _to_bytes(value)
    return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes((int(m.group(1), 16),)), raw)


def _filename(part: Message) -> str | None:
    name = _safe(part.get_filename, None)
    name = _clean_text(name) if isinstance(name, str) and name else None
    if name and _ENCODED_WORD.search(name):
        name = _clean_text(decode_header_text(name))
    if name and "\ufffd" not in name:
        return name
    # No name, or the stdlib replaced raw 8-bit bytes: read the raw parameters ourselves.
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = _raw_header(part, header)
        found = _param_from_raw(raw, param) if raw else None
        if found and (name is None or found.count("\ufffd") < name.count("\ufffd")):
            return found
    return name


def _disposition(part: Message) -> str | None:
    disp = _safe(part.get_content_disposition, None)
    if disp:
        return disp
    raw = _raw_header(part, "content-disposition")
    if raw:
        token = re.split(r"[\s;]", _unfold(raw).strip(), maxsplit=1)[0].lower()
        return token or None
    return None


def _is_multipart(part: Message) -> bool:
    return bool(_safe(part.is_multipart, False))


def _children(part: Message) -> list[Message]:
    payload = _safe(part.get_payload, [])
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _message_body(part: Message) -> bytes:
    """A message/* part's body as BytesGenerator writes it (compat32, LF): the corpus's size."""
    buf = io.BytesIO()
    try:
        BytesGenerator(buf, mangle_from_=False, policy=policy.compat32).flatten(part)
    except Exception:  # noqa: BLE001
        payload = _safe(lambda: part.get_payload(decode=False), "")
        return _to_bytes(payload) if isinstance(payload, str) else b""
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
    lean = _safe(lambda: _base64_payload(part), None)
    if lean is not None:
        return lean
    data = _safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    payload = _safe(lambda: part.get_payload(decode=False), "")
    return _to_bytes(payload) if isinstance(payload, str) else b""


# --------------------------------------------------------------------------- kinds

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


def _kind(base_type: str, filename: str | None, data: bytes) -> str:
    """Classify by type, name and magic bytes; a mislabelled PDF is still a PDF."""
    name = (filename or "").lower().rstrip(". ")
    main = _maintype(base_type)
    if base_type in _SMIME_SIGNATURES or name.endswith(".p7s"):
        return KIND_OTHER
    if main in ("message", "multipart"):
        return KIND_OTHER
    if base_type in ("application/ms-tnef", "application/vnd.ms-tnef") or name == "winmail.dat":
        return KIND_OTHER  # a container: its files are read by _tnef_attachments
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


# --------------------------------------------------------------------------- TNEF

MAX_TNEF_BYTES = 50 * 1024 * 1024


def _is_tnef(att: Attachment) -> bool:
    name = (att.filename or "").lower()
    return att.content_type.split(";")[0].strip() in ("application/ms-tnef",
                                                      "application/vnd.ms-tnef") \
        or name == "winmail.dat"


def _tnef_attachments(att: Attachment) -> list[Attachment]:
    """Outlook's winmail.dat: the files it wraps, as if forwarded (nested). A winmail.dat that
    is not TNEF (mail 79 holds a PNG) decodes to nothing, never to an exception."""
    if len(att.data) > MAX_TNEF_BYTES or att.data[:4] != b"\x78\x9f\x3e\x22":
        return []
    if not tnef_guard.plausible(att.data):  # counts that would make tnefparse spin for hours
        return []
    try:
        from tnefparse import TNEF

        tnef = TNEF(att.data)
        files = list(tnef.attachments)
    except Exception:  # noqa: BLE001 - a broken TNEF blob is the sender's problem
        return []
    out = []
    for i, f in enumerate(files, 1):
        try:
            data = bytes(f.data)
            raw_name = f.long_filename() or f.name
        except Exception:  # noqa: BLE001 - one broken entry must not lose the others
            continue
        if isinstance(raw_name, bytes):
            raw_name = raw_name.decode("latin-1")
        name = str(raw_name).strip("\x00 ") if raw_name else None
        guessed = "application/pdf" if (name or "").lower().endswith(".pdf") else \
            "application/octet-stream"
        out.append(Attachment(filename=name, content_type=guessed, size=len(data),
                              kind=_kind(guessed, name, data), data=data,
                              disposition="attachment", part=f"{att.part}.t{i}", nested=True))
    return out


# --------------------------------------------------------------------------- tree walk


@dataclass
class _Walk:
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


def _walk(part: Message, path: str, state: _Walk, parent: str | None, depth: int = 0) -> None:
    """The corpus rule: leaves with an attachment disposition, a name, or a non-text type."""
    if depth > MAX_MIME_DEPTH:
        state.defects.add("MimeDepthLimitExceeded")
        return
    for d in _safe(lambda: list(part.defects), []):
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
            _walk(sub, f"{path}.{i}", state, base, depth + 1)
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
    kind = _kind(base, filename, data)
    inline_image = kind in (KIND_IMAGE, KIND_TIFF) and (
        disp == "inline"
        or (parent == "multipart/related" and _raw_header(part, "content-id") is not None)
    )
    state.attachments.append(
        Attachment(
            filename=filename,
            content_type=ctype,
            size=len(data),
            kind=kind,
            data=data,
            disposition=disp,
            part=path,
            inline_image=inline_image,
            nested=state.nested,
        )
    )


def _forwarded(part: Message, path: str, depth: int = 0) -> Iterator[tuple[Message, str]]:
    """Inner messages of message/rfc822 (or message/global) parts, depth first."""
    if depth > MAX_MIME_DEPTH:
        return
    ctype = _base_type(_content_type(part))
    if ctype in ("message/rfc822", "message/global") and _is_multipart(part):
        inner = _children(part)
        if inner:
            yield inner[0], f"{path}.m"
            yield from _forwarded(inner[0], f"{path}.m", depth + 1)
    elif _is_multipart(part):
        for i, sub in enumerate(_children(part), 1):
            yield from _forwarded(sub, f"{path}.{i}", depth + 1)


def _text_body(part: Message | None) -> str:
    if part is None:
        return ""
    data = _leaf_bytes(part)[: TEXT_BODY_MAX_CHARS * 4]
    charset = _safe(lambda: part.get_content_charset(), None)
    text = decode_bytes(data, charset or "us-ascii")
    if not text.isascii():  # UTF-7 decodes to lone surrogates the store refuses (fuzz finding)
        text = _clean_text(text)
    return text.replace("\r\n", "\n").replace("\r", "\n")[:TEXT_BODY_MAX_CHARS]


# --------------------------------------------------------------------------- auto-replies

_AUTO_SUBJECT = re.compile(
    r"""^\s*(?:
      undeliver(?:able|ed)
    | delivery\s+(?:status\s+notification|notification|failure|failed|has\s+failed|delayed)
    | returned\s+mail | returned\s+to\s+sender
    | mail\s+delivery\s+(?:failed|failure|system|subsystem|problem)
    | mail\s+system\s+error | failure\s+notice | delayed\s+mail
    | warning:\s*could\s+not\s+send | message\s+delayed
    | non[-\s]remis | non\s+distribu | unzustellbar | nicht\s+zustellbar | onbestelbaar
    | non\s+recapitabile | no\s+se\s+puede\s+entregar | не\s*доставлено | недоставлен
    | automatic\s+reply | auto(?:matic)?[-\s]?(?:reply|response) | autorespon | auto\s*:
    | out\s+of\s+(?:the\s+)?office | r[ée]ponse\s+automatique | absence\b
    | absent(?:e|\(e\))?\s+du\s+bureau | automatische\s+antwort | abwesenheitsnotiz
    | automatisch\s+antwoord | risposta\s+automatica | respuesta\s+autom[aá]tica
    | resposta\s+autom[aá]tica | automatisk\s+svar | autosvar | automaattinen\s+vastaus
    | automatyczna\s+odpowied[zź] | автоответ | автоматический\s+ответ
    | 自动回复 | 自動回覆 | 自動応答 | 自動返信
    | read\s*: | not\s+read\s*: | lu\s*: | non\s+lu\s*: | gelesen\s*: | ungelesen\s*:
    | letto\s*: | le[ií]do\s*: | lido\s*: | gelezen\s*: | прочитано\s*:
    | read\s+receipt | return\s+receipt | disposition\s+notification
    | email\s+feedback\s+report
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_DAEMON_LOCAL = re.compile(r"^(?:mailer[-_]?daemon|mail[-_]?daemon|postmaster)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"mailer[-_ ]?daemon|mail delivery (?:sub)?system", re.IGNORECASE)


def _auto_reply_reason(
    msg: Message,
    envelope_from: str | None,
    from_addr: str | None,
    subject: str | None,
    report: str | None,
) -> str | None:
    """The first RFC 3834 signal that says a machine wrote this mail, or None.

    Such mail must never become a job nor be answered (no loops, no backscatter).
    """
    if envelope_from is not None:
        env = envelope_from.strip().strip("<>").strip()
        if not env:
            return "null envelope sender"
        if _DAEMON_LOCAL.match(env.rsplit("@", 1)[0]):
            return f"envelope sender {env}"
    if _raw_header(msg, LOOP_HEADER) is not None:
        return f"{LOOP_HEADER} present (our own mail)"
    auto = _header_text(msg, "auto-submitted")
    if auto:
        token = re.split(r"[\s;(]", auto.lower(), maxsplit=1)[0]
        if token != "no":
            return f"Auto-Submitted: {auto}"
    if report:
        return f"Content-Type {report}"
    precedence = (_header_text(msg, "precedence") or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if _raw_header(msg, "list-id") is not None:
        return "List-Id present"
    for header in (
        "X-Auto-Response-Suppress",
        "X-MS-Exchange-Inbox-Rules-Loop",
        "X-Failed-Recipients",
        "X-Autoreply",
        "X-Autorespond",
    ):
        if _raw_header(msg, header) is not None:
            return f"{header} present"
    return_path = _header_text(msg, "return-path")
    if return_path is not None and re.fullmatch(r"<?\s*>?", return_path):
        return "Return-Path: <>"
    if from_addr and _DAEMON_LOCAL.match(from_addr.rsplit("@", 1)[0].strip('"')):
        return f"From: {from_addr}"
    raw_from = _header_text(msg, "from")
    if raw_from and _DAEMON_NAME.search(raw_from):
        return f"From: {raw_from[:80]}"
    found = _AUTO_SUBJECT.search(subject) if subject else None
    if found:  # the words that matched, not the Subject: it may hold a password
        return f"Subject: {found.group(0).strip()[:80]}"
    return None


# --------------------------------------------------------------------------- entry point


def _header_section_length(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if i >= 0]
    return min(ends) if ends else len(raw)


FEED_CHUNK = 64 * 1024


def _feed(raw: bytes, headersonly: bool = False) -> Message:
    """``BytesParser(policy=_POLICY).parsebytes(raw)``, fed in slices.

    ``parsebytes`` decodes the whole mail to a str and reads it back through a ``StringIO``
    (four bytes per character): about 80 MB at once for a 10 MB mail, where feeding the
    same parser slice by slice peaks near 30 MB. The feed parser splits lines across feeds
    itself, so the tree is the same.
    """
    parser = BytesFeedParser(policy=_POLICY)
    if headersonly:
        parser._set_headersonly()  # type: ignore[attr-defined]  # as BytesHeaderParser does
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start : start + FEED_CHUNK]))
    return parser.close()


def _parse(raw: bytes) -> tuple[Message, list[str]]:
    """Full parse; if the stdlib fails (deep nesting, recursion), keep at least the headers."""
    try:
        return _feed(raw), []
    except Exception as exc:  # noqa: BLE001
        problem = f"ParseError: {type(exc).__name__}"
    try:
        return _feed(raw, headersonly=True), [problem]
    except Exception as exc:  # noqa: BLE001
        return Message(policy=_POLICY), [problem, f"HeaderParseError: {type(exc).__name__}"]


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
    if _header_section_length(raw) > max_header_bytes:
        use_registry = False
        defects.append("HeaderSectionTooLarge")
    msg, parse_problems = _parse(raw)
    defects.extend(parse_problems)

    top = _Walk(nested=False)
    _walk(msg, "1", top, None)
    nested = _Walk(nested=True)
    for inner, path in _forwarded(msg, "1"):
        _walk(inner, path, nested, None)
    for att in top.attachments:
        if _is_tnef(att):
            nested.attachments.extend(_tnef_attachments(att))

    subject = _subject(msg, use_registry)
    from_addr = _from_addr(msg, use_registry)
    reason = _auto_reply_reason(msg, envelope_from, from_addr, subject, top.report)
    defects.extend(sorted(top.defects))
    return InboundMail(
        from_addr=from_addr,
        subject=subject,
        message_id=_message_id(msg),
        is_auto_reply=reason is not None,
        auto_reply_reason=reason,
        attachments=tuple(top.attachments),
        nested_attachments=tuple(nested.attachments),
        text_body=_text_body(top.text_part),
        partial=top.partial,
        defects=tuple(defects),
    )
