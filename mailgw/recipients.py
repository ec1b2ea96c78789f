"""Recipient numbers: one written number, or a `,`/`;` list, to E.164.

Pure functions over strings. The rules (DESIGN.md, "The Subject command"; corpus
README decisions 8-10): spaces, dots, dashes and parentheses are ignored; `+` or `00`
starts an international number; 6-17 digits; the result must pass phonenumbers'
`is_valid_number`. Letters make an element invalid: libphonenumber would map them with
the phone keypad, and a fax to a guessed number is worse than a refusal.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass

from mailgw.e164 import valid_e164

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
        return valid_e164(compact, None)
    region = region.upper()
    found = valid_e164(compact, region)
    if found is not None:
        return found
    readings = {
        e164
        for sibling in SIBLING_REGIONS.get(region, ())
        if (e164 := valid_e164(compact, sibling)) is not None
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

# A CSV header names the number column in the words people write, compared once accents,
# case, spaces, underscores and dashes are folded (`column_key`). The canonical names, in
# the order that decides between two number columns, and the words that mean each:
NUMBER_COLUMNS: dict[str, tuple[str, ...]] = {
    "FAX": ("fax", "telecopie", "факс", "факса"),
    "MOBILE": ("mobile", "cell", "cellulaire", "мобильныи", "сотовыи"),
    "PORTABLE": ("portable",),
    "GSM": ("gsm",),
    "SMS": ("sms",),
    "TEL": ("tel", "telephone", "phone", "телефон", "телефона", "тел"),
    "NUMERO": ("numero", "number", "номер"),
}
# Words that may stand around those: `Numéro de téléphone`, `N° de fax`, `Phone number`.
_FILLERS = frozenset({"de", "du", "d", "of", "n", "no", "num", "nr"})
_SAMPLE_ROWS = 50  # rows looked at to find the column of numbers in a list with no header
_LINE_SPLIT = re.compile(r"[,;\r\n]+")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


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
    """What spreadsheets save: UTF-8 with or without its BOM, UTF-16/32 with theirs
    (Excel's "Unicode text"), else Windows-1252 (a French Excel's "CSV (;)")."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    data = data.removeprefix(codecs.BOM_UTF8)
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def column_key(name: str) -> str:
    """A header folded for comparison: `  N° de Téléphone_` → `n de telephone`."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name)
                    if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


def number_column_name(header: str) -> str | None:
    """The canonical name (FAX, MOBILE, …, NUMERO) a header cell means, or None: every word
    must be a number word or a filler, so `Numéro client` or `Date fax` are not one."""
    words = column_key(header).split()
    named = [canon for canon, means in NUMBER_COLUMNS.items() if any(w in means for w in words)]
    known = _FILLERS.union(*NUMBER_COLUMNS.values())
    if not named or any(w not in known for w in words):
        return None
    return named[0]


def parse_list(data: bytes, filename: str | None, region: str, *,
               max_lines: int = 100_000) -> RecipientList:
    """A .csv list (`;`, `,` or tab; the number column named as in NUMBER_COLUMNS, or the
    one column of numbers) or a .txt list (numbers separated by commas, semicolons or new
    lines)."""
    text = _decode(data).lstrip("\ufeff")  # a BOM saved twice (a file re-saved) is text
    is_csv = (filename or "").lower().endswith(".csv")
    lines = text.count("\n") + (not text.endswith("\n"))  # a last line may end with one
    if lines > max_lines + is_csv:  # the limit counts recipients, not a CSV's header
        return RecipientList((), (), too_long=True)
    if is_csv:
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


def _header_column(header: list[str]) -> int | None:
    """The column a header names, the canonical order deciding between two."""
    ranks = list(NUMBER_COLUMNS)
    named = [(ranks.index(canon), i) for i, cell in enumerate(header)
             if (canon := number_column_name(cell)) is not None]
    return min(named)[1] if named else None


def _numeric_column(rows: list[list[str]], region: str) -> int | None:
    """The one column where at least half the cells of the first rows are valid numbers;
    None when no column or several look like that (guessing would dial a wrong column)."""
    sample = rows[:_SAMPLE_ROWS + 1]
    width = max(len(r) for r in sample)
    found = []
    for i in range(width):
        cells = [r[i].strip() for r in sample if i < len(r) and r[i].strip()]
        valid = sum(1 for cell in cells if normalize_number(cell, region) is not None)
        if valid and valid * 2 >= len(cells):
            found.append(i)
    return found[0] if len(found) == 1 else None


def _parse_csv(text: str, region: str) -> RecipientList:
    first = text.split("\n", 1)[0]
    delimiter = max((";", ",", "	"), key=first.count)  # the first on a tie: `;`
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error:  # a lone CR in a line, a field over 128 KB (fuzz finding)
        return RecipientList((), (), error="the list is not a readable CSV")
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return RecipientList((), (), error="the list is empty")
    header = [cell.strip() for cell in rows[0]]
    data = rows[1:]
    column = _header_column(header)
    if column is None:
        column = _numeric_column(rows, region)
        if column is None:
            return RecipientList((), (), error="no number column (FAX, MOBILE, PORTABLE, GSM, "
                                               "SMS, TEL or NUMERO) in the CSV header")
        if column < len(rows[0]) and normalize_number(rows[0][column], region) is not None:
            header = [f"COL{i + 1}" for i in range(max(len(r) for r in rows))]
            data = rows  # no header row: the first row is a recipient too
    entries: dict[str, ListEntry] = {}
    invalid: dict[str, None] = {}
    duplicates = 0
    for row in data:
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
