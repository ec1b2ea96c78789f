"""ASCII for an SMTP reply line when the client has no SMTPUTF8 (RFC 6531).

A refusal must stay readable in the account's language: French loses only its accents, and
Russian is transliterated, not replaced by English or stripped to its punctuation. Latin
letters go through NFKD (accents dropped) and a few letters NFKD keeps whole (ß, æ, œ, ø,
ł…); Cyrillic follows ICAO Doc 9303, the table of Russian passports (Ж zh, Х kh, Ц ts,
Щ shch, Ю iu, Я ia, Й i, Ы y, Ь dropped); typographic quotes and dashes become their ASCII
forms. A character of any other script becomes "?", so the reader sees that something was
there. Our own table instead of `unidecode` (GPL): this project is MIT.
"""

from __future__ import annotations

import re
import unicodedata

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
    "з": "z", "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
    "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu",
    "я": "ia",
    # Ukrainian and Belarusian letters (ICAO 9303 too), for names in a Russian account
    "є": "ie", "і": "i", "ї": "i", "ґ": "g", "ў": "u",
    # Serbian and Macedonian letters (their official Latin spellings)
    "ђ": "dj", "ј": "j", "љ": "lj", "њ": "nj", "ћ": "c", "џ": "dz", "ѓ": "g", "ќ": "k",
    "ѕ": "dz",
    # Kazakh letters (the 2021 Latin alphabet, without its accents)
    "ә": "a", "ғ": "g", "қ": "q", "ң": "n", "ө": "o", "ұ": "u", "ү": "u", "һ": "h",
}

# Letters NFKD leaves whole, and punctuation with a plain ASCII form.
_OTHER = {
    "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l",
    "Ł": "L", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i",
    "«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"', "‹": "'", "›": "'",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "‐": "-", "‑": "-", "‒": "-", "–": "-",
    "—": "-", "―": "-", "−": "-", "ʼ": "'", "•": "*", "·": ".", "€": "EUR", "×": "x",
    "µ": "u", "ə": "e", "Ə": "E", "ŋ": "ng", "Ŋ": "NG", "ĸ": "q",
}


_LATIN_NAME = re.compile(r"LATIN (SMALL|CAPITAL) LETTER ([A-Z]{1,2})(?: WITH .*)?$")


def _cyrillic(ch: str, before: str, after: str) -> str | None:
    """One Cyrillic letter; an upper-case one is "Zh" in a word, "ZH" among capitals."""
    lower = ch.lower()
    latin = _CYRILLIC.get(lower)
    if latin is None or ch == lower:
        return latin
    if before.isupper() or after.isupper():
        return latin.upper()
    return latin.capitalize()


def to_ascii(text: str) -> str:
    """`text` in ASCII: transliterated, accents dropped, unknown letters as "?"; line breaks
    and control characters become spaces (a reply is one line)."""
    if text.isascii():
        return "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in text)
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(" " if ord(ch) < 32 or ch == "\x7f" else ch)
            continue
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        latin = _one(ch, before, after)
        out.append(_decomposed(ch, before, after) if latin is None else latin)
    return "".join(out)


def _one(ch: str, before: str = "", after: str = "") -> str | None:
    """One character from the tables, or None."""
    if ch.isascii():
        return ch
    latin = _cyrillic(ch, before, after)
    return _OTHER.get(ch) if latin is None else latin


def _decomposed(ch: str, before: str, after: str) -> str:
    """A character outside the tables: its NFKD base letters, a Latin letter's own letter by
    its Unicode name (ħ "LATIN SMALL LETTER H WITH STROKE": h), a space for a space, nothing
    for a mark or a format character (soft hyphen, zero width), else "?"."""
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    parts = [_one(c, before, after) for c in base]  # Ѐ is Е and a grave accent
    if all(p is not None for p in parts) and (base or not ch.isalpha()):
        out = "".join(p for p in parts if p is not None)
        return " " if out and out.isspace() else out
    named = _LATIN_NAME.match(unicodedata.name(ch, ""))
    if named:
        return named.group(2).lower() if named.group(1) == "SMALL" else named.group(2)
    category = unicodedata.category(ch)
    if category.startswith("Z") or category == "Cc":
        return " "
    if category == "Cf":
        return ""
    return "?"
