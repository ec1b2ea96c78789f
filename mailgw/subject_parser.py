"""The Subject command: `[Re:|Fwd:|…] password : numbers : ref : comment : when [:]`.

Pure: no I/O and no clock reads (`now` is a parameter), so every rule is table-tested
against `tests/corpus/subjects.tsv`. Parsing never fails; it fills a `Command` as far
as the text allows, and `decide` turns that into the reply code, in the design's order
(88, 89, 82, 84, 85, then cancel / deferred / now) so a sender without the right
password learns nothing about numbers, groups or dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailgw.codes import Code
from mailgw.recipients import parse_number_list

# Characters, not bytes: the byte cap (`max_subject_bytes`) is enforced by intake; this
# only bounds the work a hostile Subject can cause here.
MAX_SUBJECT_CHARS = 32 * 1024
# A deferred time this far in the past still sends (now): the user was just slow.
GRACE = timedelta(minutes=15)

PREFIXES: tuple[str, ...] = (
    "Re", "Fwd", "Fw", "TR", "AW", "WG", "SV", "R", "I", "RIF",
    "Ответ", "Отв", "回复", "Antw",
)  # fmt: skip

# One prefix, with an optional `[2]` counter and a ':' (or the full-width '：' that CJK
# clients write). Longest first so 'Fwd' is not read as 'Fw' + 'd'.
_PREFIX = re.compile(
    r"\s*(?:"
    + "|".join(re.escape(p) for p in sorted(PREFIXES, key=len, reverse=True))
    + r")\s*(?:\[\d{1,6}\])?\s*[:：]",
    re.IGNORECASE,
)
# C0/C1 controls (CR, LF, TAB, NUL …) become spaces: an unfolded Subject has none, and a
# stray CR/LF echoed into a reply header would be a header injection.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Lone surrogates (surrogateescape'd bytes) cannot be encoded for the store or a reply.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
_DATE_LIKE = re.compile(r"([0-9]{8,16})([sS]?)")
# The numbers field replaced by one of these words: a preview (the body's `preview: yes`
# says the same, mailgw.intake.trial). Compared case-insensitively, spaces ignored.
PREVIEW_WORDS = frozenset({"preview", "aperçu", "apercu", "предпросмотр", "просмотр"})


@dataclass(frozen=True)
class Command:
    """What the Subject asked for, filled in as parsed whatever the reply code will be."""

    password: str = field(repr=False)  # '' when empty; never logged
    numbers: tuple[str, ...]
    invalid_numbers: tuple[str, ...]
    groups: tuple[str, ...]
    ref: str | None
    comment: str | None
    when_local: datetime | None  # naive wall time as written; None if absent or rejected
    when_utc: datetime | None  # aware UTC; None if absent, rejected or within the grace
    cancel: bool
    when_error: bool  # a when-field is present but malformed, impossible or too old
    duplicates: int = 0  # numbers given twice in the Subject (dialled once)
    preview: bool = False  # the numbers field is the word `preview`: render, never dial

    @property
    def password_given(self) -> bool:
        return bool(self.password)


class SubjectError(Exception):
    """A Subject that cannot be served; `code` is the reply code (see mailgw.codes)."""

    def __init__(self, code: int, command: Command | None = None, message: str = "") -> None:
        super().__init__(message or f"subject refused with code {code}")
        self.code = code
        self.command = command


def strip_prefixes(subject: str) -> str:
    """Drop reply/forward prefixes, repeatedly; they end in ':' like a field would."""
    pos = 0
    while (match := _PREFIX.match(subject, pos)) is not None:
        pos = match.end()
    return subject[pos:]


def _clean(subject: str | bytes | None) -> str:
    if subject is None:
        return ""
    if isinstance(subject, bytes | bytearray):
        subject = bytes(subject[: MAX_SUBJECT_CHARS * 4]).decode("utf-8", "replace")
    elif not isinstance(subject, str):
        return ""
    subject = subject[:MAX_SUBJECT_CHARS]
    subject = _CONTROLS.sub(" ", subject)
    return _SURROGATES.sub("\ufffd", subject)


@dataclass(frozen=True)
class _When:
    local: datetime | None
    utc: datetime | None
    cancel: bool
    error: bool


def _parse_when(text: str, zone: ZoneInfo, now: datetime) -> _When | None:
    """Read a when-field, or None when the field is not date-like (then it is comment)."""
    match = _DATE_LIKE.fullmatch(_WHITESPACE.sub("", text))
    if match is None:
        return None
    digits, cancel = match.group(1), bool(match.group(2))
    rejected = _When(None, None, cancel, True)
    if len(digits) != 12:  # a mistyped date must never become an immediate send
        return rejected
    hh, mi, dd, mo, yyyy = (int(digits[i:j]) for i, j in ((0, 2), (2, 4), (4, 6), (6, 8), (8, 12)))
    try:
        local = datetime(yyyy, mo, dd, hh, mi)
        aware = local.replace(tzinfo=zone, fold=0)  # DST overlap: the first occurrence
        utc = aware.astimezone(UTC)
        if utc.astimezone(zone).replace(tzinfo=None) != local:  # DST gap: never shown
            return rejected
    except (ValueError, OverflowError):  # 31 Feb, 25:00, minute 60, year 0 …
        return rejected
    if utc < now - GRACE:
        return rejected
    if utc <= now:
        return _When(local, None, cancel, False)
    return _When(local, utc, cancel, False)


def parse_subject(subject: str | None, *, region: str, tz: str, now: datetime) -> Command:
    """Parse a decoded, unfolded Subject into a Command; never raises on any Subject.

    `region` reads national numbers, `tz` (IANA name) reads the when-field, and `now`
    (aware) places it: more than 15 minutes past is an error, up to 15 minutes past
    sends now. An unknown `tz` or a naive `now` is a caller bug and raises ValueError.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc

    fields = strip_prefixes(_clean(subject)).split(":")
    password = fields[0].strip()
    preview = len(fields) > 1 and fields[1].strip().lower() in PREVIEW_WORDS
    listed = parse_number_list(fields[1], region) if len(fields) > 1 and not preview else None
    ref = (fields[2].strip() or None) if len(fields) > 2 else None

    # `when` is only the last non-empty field, and only from the 4th field on: password,
    # numbers and ref are claimed from the left first.
    end = len(fields)
    while end > 3 and not fields[end - 1].strip():
        end -= 1
    when = _parse_when(fields[end - 1], zone, now) if end > 3 else None
    if when is not None:
        end -= 1
    comment = ":".join(fields[3:end]).strip() or None

    return Command(
        password=password,
        numbers=listed.numbers if listed else (),
        invalid_numbers=listed.invalid if listed else (),
        groups=listed.groups if listed else (),
        ref=ref,
        comment=comment,
        when_local=when.local if when else None,
        when_utc=when.utc if when else None,
        cancel=when.cancel if when else False,
        when_error=when.error if when else False,
        duplicates=listed.duplicates if listed else 0,
        preview=preview,
    )


def decide(
    cmd: Command, *, password_ok: bool, extra_numbers: int = 0, extra_invalid: int = 0,
    cancel_matches: bool = True
) -> Code:
    """The reply code for `cmd`; syntax first, then the password, then what it reveals.

    `extra_numbers` counts valid numbers from other sources (the address, an attached
    list), `extra_invalid` the invalid ones (an address `123456@domain`); `cancel_matches`
    says whether a deferred job matches a cancel request. A cancel needs no number when it
    names a ref: it then matches the jobs with that ref. A preview needs no number (it
    dials none): its ack shows the fax as the first number, if any, would get it.
    """
    if not cmd.password:
        return Code.NO_PASSWORD
    numbered = bool(cmd.numbers or cmd.invalid_numbers or cmd.groups or extra_numbers > 0
                    or extra_invalid > 0 or cmd.preview)
    if not numbered and not (cmd.cancel and cmd.ref):
        return Code.NO_NUMBER
    if not password_ok:
        return Code.BAD_PASSWORD
    if numbered and not (cmd.numbers or cmd.groups or extra_numbers > 0 or cmd.preview):
        return Code.BAD_NUMBER
    if cmd.when_error:
        return Code.BAD_WHEN
    if cmd.cancel:
        return Code.CANCELLED if cancel_matches else Code.NOTHING_TO_CANCEL
    if cmd.when_utc is not None:
        return Code.DEFERRED
    return Code.SENDING


MASK = "•••"
# A password of this many characters or more is masked wherever else it appears in the
# Subject too (typed twice, pasted into the comment). A shorter one is masked only in its
# position: erasing every "12" would garble the numbers, and 1-3 characters hide nothing.
MASK_EVERYWHERE_FROM = 4


def masked_subject(subject: str | bytes | None) -> str | None:
    """The Subject with the password position replaced by `•••`: what is stored, logged,
    rendered and sent, never the Subject itself.

    The password position is the first field after the reply/forward prefixes, whatever it
    holds and whether a ':' follows or not (the address form's Subject is the password
    alone): a wrong password is masked too, since it is often the right one mistyped.
    Reads the Subject as `parse_subject` does (same cleaning, same prefixes), so what it
    masks is what the parser reads as the password. Idempotent.
    """
    if subject is None:
        return None
    text = _clean(subject)
    body = strip_prefixes(text)
    head = text[: len(text) - len(body)]
    field, sep, rest = body.partition(":")
    secret = field.strip()
    if not secret:
        return text  # 88: no password given, nothing to hide
    lead = field[: len(field) - len(field.lstrip())]
    trail = field[len(field.rstrip()):]
    masked = f"{head}{lead}{MASK}{trail}{sep}{rest}"
    if len(secret) >= MASK_EVERYWHERE_FROM:
        while secret in masked:  # each pass shortens the text: the mask is shorter
            masked = masked.replace(secret, MASK)
    return masked
