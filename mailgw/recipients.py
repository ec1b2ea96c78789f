"""Recipient numbers: one written number, or a `,`/`;` list, to E.164.

Pure functions over strings. The rules (DESIGN.md, "The Subject command"; corpus
README decisions 8-10): spaces, dots, dashes and parentheses are ignored; `+` or `00`
starts an international number; 6-17 digits; the result must pass phonenumbers'
`is_valid_number`. Letters make an element invalid: libphonenumber would map them with
the phone keypad, and a fax to a guessed number is worse than a refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

MIN_DIGITS = 6
MAX_DIGITS = 17

# Regions whose national numbers are written in one shared dialling plan but carry
# different country codes: `0262 12 34 56` written by a French account is Réunion.
# Only plans like France's need this; NANP numbers already resolve through +1.
_SHARED_PLANS: tuple[tuple[str, ...], ...] = (
    ("FR", "RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF"),
)
SIBLING_REGIONS: dict[str, tuple[str, ...]] = {
    region: tuple(other for other in plan if other != region)
    for plan in _SHARED_PLANS
    for region in plan
}

_ALLOWED = re.compile(r"[0-9+().\-\s]+")
_SEPARATORS = re.compile(r"[\s().\-]+")
_DIALLABLE = re.compile(r"\+?[0-9]+")
_LIST_SPLIT = re.compile(r"[,;]")


@dataclass(frozen=True)
class NumberList:
    """A parsed number list: what to dial, what was refused, which groups were named."""

    numbers: tuple[str, ...]  # E.164, '+' prefixed, deduplicated, input order
    invalid: tuple[str, ...]  # elements as written (trimmed), deduplicated
    groups: tuple[str, ...]  # group names without '@', deduplicated
    duplicates: int = 0  # valid numbers given more than once (counted, dialled once)


def _valid_e164(text: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_number(raw: str, region: str) -> str | None:
    """One written number to E.164, or None when it is not a valid diallable number.

    `region` is the account's default region (ISO 3166 alpha-2), used for national
    numbers; a national number not valid there is tried in the regions sharing its
    dialling plan and taken only when exactly one reading is valid.
    """
    text = raw.strip()
    if not text or _ALLOWED.fullmatch(text) is None:
        return None
    compact = _SEPARATORS.sub("", text)
    if _DIALLABLE.fullmatch(compact) is None:  # '+' anywhere but first, or no digit
        return None
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    digits = compact.removeprefix("+")
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        return None
    if compact.startswith("+"):
        return _valid_e164(compact, None)
    region = region.upper()
    found = _valid_e164(compact, region)
    if found is not None:
        return found
    readings = {
        e164
        for sibling in SIBLING_REGIONS.get(region, ())
        if (e164 := _valid_e164(compact, sibling)) is not None
    }
    # Several country codes may read it validly; guessing would dial a stranger.
    return readings.pop() if len(readings) == 1 else None


def parse_number_list(text: str, region: str) -> NumberList:
    """Split `text` on `,` or `;` and sort each element into numbers, invalid or groups.

    Empty elements (`,,`) are ignored. `@name` names a group. Duplicates are dropped,
    first occurrence wins (for numbers, by E.164, so two spellings count once).
    Linear in the length of `text`.
    """
    numbers: dict[str, None] = {}
    invalid: dict[str, None] = {}
    groups: dict[str, None] = {}
    duplicates = 0
    for element in _LIST_SPLIT.split(text):
        element = element.strip()
        if not element:
            continue
        if element.startswith("@"):
            name = element[1:].strip()
            if name:
                groups.setdefault(name)
            else:
                invalid.setdefault(element)
            continue
        e164 = normalize_number(element, region)
        if e164 is None:
            invalid.setdefault(element)
        elif e164 in numbers:
            duplicates += 1
        else:
            numbers.setdefault(e164)
    return NumberList(tuple(numbers), tuple(invalid), tuple(groups), duplicates)


# -- attached recipient lists ---------------------------------------------------------------

NUMBER_COLUMNS = ("FAX", "MOBILE", "PORTABLE", "GSM", "SMS", "TEL", "NUMERO")
_LINE_SPLIT = re.compile(r"[,;\r\n]+")


@dataclass(frozen=True)
class ListEntry:
    number: str  # E.164
    columns: tuple[tuple[str, str], ...] = ()  # the list's other columns, for reports


@dataclass(frozen=True)
class RecipientList:
    """Numbers read from an attached .txt or .csv list."""

    entries: tuple[ListEntry, ...]
    invalid: tuple[str, ...]
    duplicates: int = 0
    too_long: bool = False  # more lines than the limit: refused (94), never cut silently
    error: str | None = None  # e.g. a CSV without a number column


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _column_key(name: str) -> str:
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Z]", "", plain.upper())


def parse_list(data: bytes, filename: str | None, region: str, *,
               max_lines: int = 100_000) -> RecipientList:
    """A .csv list (`;` or `,`, number column FAX/MOBILE/PORTABLE/GSM/SMS/TEL/NUMERO) or a
    .txt list (numbers separated by commas, semicolons or new lines)."""
    text = _decode(data)
    if text.count("\n") + 1 > max_lines + 1:
        return RecipientList((), (), too_long=True)
    if (filename or "").lower().endswith(".csv"):
        return _parse_csv(text, region)
    entries: dict[str, ListEntry] = {}
    invalid: dict[str, None] = {}
    duplicates = 0
    for element in _LINE_SPLIT.split(text):
        element = element.strip()
        if not element:
            continue
        e164 = normalize_number(element, region)
        if e164 is None:
            invalid.setdefault(element[:60])
        elif e164 in entries:
            duplicates += 1
        else:
            entries[e164] = ListEntry(e164)
    return RecipientList(tuple(entries.values()), tuple(invalid), duplicates)


def _parse_csv(text: str, region: str) -> RecipientList:
    import csv
    import io

    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") >= first.count(",") else ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:  # a lone CR in a line, a field over 128 KB (fuzz finding)
        return RecipientList((), (), error="the list is not a readable CSV")
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return RecipientList((), (), error="the list is empty")
    header = [cell.strip() for cell in rows[0]]
    keys = [_column_key(h) for h in header]
    column = next((keys.index(k) for k in NUMBER_COLUMNS if k in keys), None)
    if column is None:
        return RecipientList((), (), error="no number column (FAX, MOBILE, PORTABLE, GSM, SMS,"
                                           " TEL or NUMERO) in the CSV header")
    entries: dict[str, ListEntry] = {}
    invalid: dict[str, None] = {}
    duplicates = 0
    for row in rows[1:]:
        raw = row[column].strip() if column < len(row) else ""
        e164 = normalize_number(raw, region) if raw else None
        if e164 is None:
            invalid.setdefault(raw[:60] or "(empty)")
            continue
        if e164 in entries:
            duplicates += 1
            continue
        others = tuple((header[i], row[i].strip()) for i in range(min(len(header), len(row)))
                       if i != column and header[i])
        entries[e164] = ListEntry(e164, others)
    return RecipientList(tuple(entries.values()), tuple(invalid), duplicates)
