"""Header values of hostile mail as text: RFC 2047 words, RFC 2231 parameters, From, Subject.

The stdlib's header registry is strict, slow on some inputs and can overflow the stack, so
:data:`POLICY` guards it, and every accessor here can read the raw value by hand instead.
None of these functions raises on malformed input.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses
from typing import Any, TypeVar

from mailgw.inbound.charset import clean_text, decode_bytes, has_surrogates, to_bytes

_T = TypeVar("_T")
_D = TypeVar("_D")


def safe(fn: Callable[[], _T], default: _D) -> _T | _D:
    """Call a stdlib accessor that may raise on hostile input; fall back instead."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - the stdlib raises many types on malformed mail
        return default


def unfold(text: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", text).replace("\r", "").replace("\n", "")


# --------------------------------------------------------------------------- RFC 2047

ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
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
    return clean_text(text)


def decode_header_text(value: str) -> str:
    """Unfold and decode RFC 2047 words, tolerating the breakage seen in real mail.

    Handles unknown or non-standard charsets, bad base64 padding, encoded words glued to
    text (as in unquoted parameters), multibyte characters split across adjacent words, and
    raw 8-bit bytes.
    """
    value = unfold(value)
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

    for m in ENCODED_WORD.finditer(value):
        gap = value[pos : m.start()]
        if gap and not (pending_cs is not None and gap.isspace()):
            flush()
            pieces.append(_decode_plain(gap))
        charset, enc, text = m.group(1), m.group(2).lower(), to_bytes(m.group(3))
        raw = _decode_b(text) if enc == "b" else _decode_q(text)
        if pending_cs is not None and pending_cs != charset.lower():
            flush()
        pending_cs = charset.lower()
        pending += raw
        pos = m.end()
    flush()
    pieces.append(_decode_plain(value[pos:]))
    return "".join(pieces)


# --------------------------------------------------------------------------- the header registry

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
POLICY = _GuardedPolicy()


# --------------------------------------------------------------------------- header access


def raw_header(msg: Message, name: str) -> str | None:
    """First raw value of a header as received (no registry parsing: cannot raise)."""
    lname = name.lower()
    try:
        for key, value in msg.raw_items():
            if key.lower() == lname:
                return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001
        return None
    return None


def header_text(msg: Message, name: str) -> str | None:
    """A header as plain text for matching: unfolded, encoded words decoded, stripped."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    return clean_text(decode_header_text(raw)).strip()


def read_subject(msg: Message, use_registry: bool) -> str | None:
    raw = raw_header(msg, "subject")
    if raw is None:
        return None
    ours = clean_text(decode_header_text(raw))
    if not use_registry:
        return ours
    stdlib = safe(lambda: str(msg["subject"]), None)
    # The stdlib gives up on unknown charsets (U+FFFD) and codec errors (leaves the raw word).
    if (
        stdlib is None
        or "\ufffd" in stdlib
        or ENCODED_WORD.search(stdlib)
        or has_surrogates(stdlib)
    ):
        return ours
    return stdlib


def _pick_address(addrs: list[str]) -> str | None:
    """The first real mailbox; an unquoted comma ("Doe, John <j@x>") yields a bogus "Doe"."""
    found = [a for a in (clean_text(x).strip() for x in addrs) if a and a != "<>"]
    return next((a for a in found if "@" in a), found[0] if found else None)


def read_from_addr(msg: Message, use_registry: bool) -> str | None:
    raw = raw_header(msg, "from")
    if raw is None:
        return None
    if use_registry:
        header: Any = safe(lambda: msg["from"], None)
        addrs = safe(lambda: [str(a.addr_spec) for a in header.addresses], None)
        if addrs and _pick_address(addrs):
            return _pick_address(addrs)
    # The stdlib raised (or was bypassed): the classic, linear address parser on the raw value.
    unfolded = unfold(clean_text(raw))
    return _pick_address([addr for _name, addr in safe(lambda: getaddresses([unfolded]), [])])


def read_message_id(msg: Message) -> str | None:
    raw = raw_header(msg, "message-id")
    if raw is None:
        return None
    value = " ".join(clean_text(unfold(raw)).split())
    return value or None


# --------------------------------------------------------------------------- RFC 2231

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')


def _raw_params(raw: str) -> list[tuple[str, str]]:
    params = []
    for m in _PARAM.finditer(";" + unfold(raw).split(";", 1)[-1] if ";" in raw else ""):
        value = m.group(2).strip()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1] if value.endswith('"') else value[1:])
        params.append((m.group(1).lower(), value))
    return params


def param_from_raw(raw: str, name: str) -> str | None:
    """A file name parameter read by hand, for what the stdlib parser gives up on.

    Covers unquoted encoded words (``name==?utf-8?B?...?=``) and RFC 2231 continuations.
    """
    params = _raw_params(raw)
    for key, value in params:
        if key == name and value:
            return clean_text(decode_header_text(value))
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
            data += to_bytes(value)
    return clean_text(decode_bytes(bytes(data), charset or "utf-8")) or None


def _percent_decode(value: str) -> bytes:
    raw = to_bytes(value)
    return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes((int(m.group(1), 16),)), raw)
