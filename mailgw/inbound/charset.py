"""Bytes → text for mail charset labels as they are found in the wild; never raises.

Mail says ``iso-8859-1`` and means cp1252, says ``shift_jis`` and means cp932, or names no
charset (or an unknown one) at all. :func:`decode_bytes` tries the codecs a label stands for
in practice and falls back to U+FFFD rather than losing text. The stdlib parser's view of raw
8-bit bytes (ASCII + surrogateescape) is undone here too, so strings are safe to print and
to store.
"""

from __future__ import annotations

import codecs
import re

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


# --------------------------------------------------------------------------- raw 8-bit text


def to_bytes(text: str) -> bytes:
    """Undo the parser's ASCII+surrogateescape view of the raw bytes."""
    try:
        return text.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape" if has_surrogates(text) else "strict")


def has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


_SURROGATE_RUN = re.compile("[\udc80-\udcff]+")


def clean_text(text: str) -> str:
    """Turn raw 8-bit bytes (lone surrogates) into text, so strings are safe to print."""
    if not has_surrogates(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        pass

    def fix(m: re.Match[str]) -> str:
        return decode_bytes(m.group().encode("ascii", "surrogateescape"), None)

    fixed = _SURROGATE_RUN.sub(fix, text)
    return fixed.encode("utf-8", "replace").decode("utf-8")
