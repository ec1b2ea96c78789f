"""Subject-command parsing: the test corpus's table row by row, then our own edge cases."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailgw.subject_parser import (
    MAX_SUBJECT_CHARS,
    PREFIXES,
    Command,
    SubjectError,
    decide,
    parse_subject,
    strip_prefixes,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=PARIS)
PASSWORD = "FGB45L"


def corpus_dir() -> Path:
    override = os.environ.get("MAILGW_CORPUS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "corpus"


def _load_rows() -> list[Any]:
    """One pytest.param per table row (id = line number); a single marker when absent."""
    path = corpus_dir() / "subjects.tsv"
    if not path.is_file():
        return [pytest.param(None, None, id="corpus-missing")]
    rows = []
    # split('\n'), not splitlines(): a Subject may hold U+2028 or U+001C.
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        subject, _, expected = line.rpartition("\t")
        if expected == "expected_json":  # the header row
            continue
        rows.append(pytest.param(subject, expected, id=str(lineno)))
    return rows


ROWS = _load_rows()


def _missing_corpus() -> None:
    reason = f"corpus not found at {corpus_dir()} (set MAILGW_CORPUS)"
    if os.environ.get("MAILGW_REQUIRE_ALL") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def parse(subject: str | None, now: datetime = NOW, tz: str = "Europe/Paris") -> Command:
    return parse_subject(subject, region="FR", tz=tz, now=now)


def code_of(cmd: Command) -> int:
    return decide(cmd, password_ok=cmd.password == PASSWORD, cancel_matches=True)


def as_row(cmd: Command) -> dict[str, Any]:
    """The Command in the corpus's JSON vocabulary."""
    return {
        "code": code_of(cmd),
        "password_given": cmd.password_given,
        "numbers": list(cmd.numbers),
        "invalid_numbers": list(cmd.invalid_numbers),
        "groups": list(cmd.groups),
        "ref": cmd.ref,
        "comment": cmd.comment,
        "when_local": cmd.when_local.strftime("%Y-%m-%dT%H:%M") if cmd.when_local else None,
        "cancel": cmd.cancel,
    }


@pytest.mark.parametrize(("subject", "expected_json"), ROWS)
def test_corpus_row(subject: str | None, expected_json: str | None) -> None:
    if expected_json is None:
        _missing_corpus()
        return
    expected = json.loads(expected_json)  # a broken row fails here, never silently
    got = as_row(parse(subject))
    assert set(expected) <= set(got), f"unknown keys {set(expected) - set(got)}"
    assert {key: got[key] for key in expected} == expected


def test_corpus_is_not_empty() -> None:
    if ROWS and ROWS[0].values[1] is None:
        _missing_corpus()
    # 79 cases and a header line when this was written; every non-comment line is a row.
    assert len(ROWS) >= 79


# --- prefixes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "rest"),
    [
        ("Re: x", "x"),
        ("re:x", "x"),
        ("RE : x", "x"),
        ("Fw: Fwd: FW: x", "x"),
        ("TR: WG: AW: SV: x", "x"),
        ("RIF: R: I: x", "x"),
        ("ОТВЕТ: Отв: x", "x"),
        ("回复: 回复：x", "x"),
        ("Antw: x", "x"),
        ("Re[2]: Re [13]: x", "x"),
        ("Re: ", ""),
        ("Reunion: x", "Reunion: x"),  # a word that starts like a prefix is not one
        ("Re x", "Re x"),  # no colon, no prefix
        ("Re[]: x", "Re[]: x"),
        ("x Re: y", "x Re: y"),  # only leading prefixes
    ],
)
def test_strip_prefixes(subject: str, rest: str) -> None:
    assert strip_prefixes(subject).strip() == rest


def test_every_listed_prefix_is_stripped() -> None:
    for prefix in PREFIXES:
        for spelled in (prefix, prefix.upper(), prefix.lower()):
            cmd = parse(f"{spelled}: {PASSWORD}:0170709901:32")
            assert cmd.password == PASSWORD, spelled


# --- when: local wall time to UTC, and the clock ----------------------------------------


@pytest.mark.parametrize(
    ("when", "tz", "utc"),
    [
        ("153012092026", "Europe/Paris", datetime(2026, 9, 12, 13, 30, tzinfo=UTC)),  # CEST
        ("090015012027", "Europe/Paris", datetime(2027, 1, 15, 8, 0, tzinfo=UTC)),  # CET
        # DST overlap: 02:30 on 25 Oct 2026 happens twice; the first (CEST) is used.
        ("023025102026", "Europe/Paris", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("030029032026", "Europe/Paris", None),  # after the gap: fine, but in the past
        ("153012092026", "America/New_York", datetime(2026, 9, 12, 19, 30, tzinfo=UTC)),
        ("000001012027", "Asia/Tokyo", datetime(2026, 12, 31, 15, 0, tzinfo=UTC)),
    ],
)
def test_when_utc(when: str, tz: str, utc: datetime | None) -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:{when}", tz=tz)
    assert cmd.when_utc == utc
    if utc is not None:
        assert cmd.when_utc is not None and cmd.when_utc.tzinfo is UTC
        assert cmd.when_local is not None and cmd.when_local.tzinfo is None
        assert cmd.when_local.strftime("%H%M%d%m%Y") == when
        assert code_of(cmd) == 81


@pytest.mark.parametrize(
    ("now", "code", "deferred"),
    [
        (datetime(2026, 6, 1, 11, 59, tzinfo=PARIS), 81, True),  # 1 min ahead
        (datetime(2026, 6, 1, 12, 0, tzinfo=PARIS), 80, False),  # exactly now: send now
        (datetime(2026, 6, 1, 12, 15, tzinfo=PARIS), 80, False),  # 15 min late: still now
        (datetime(2026, 6, 1, 12, 15, 1, tzinfo=PARIS), 85, False),  # 15 min 1 s late
        (datetime(2026, 6, 1, 12, 16, tzinfo=PARIS), 85, False),
        (datetime(2026, 6, 1, 10, 5, tzinfo=UTC), 80, False),  # now in another zone
        (datetime(2026, 6, 1, 10, 16, tzinfo=UTC), 85, False),
    ],
)
def test_grace_boundary(now: datetime, code: int, deferred: bool) -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:120001062026", now=now)
    assert code_of(cmd) == code
    assert (cmd.when_utc is not None) is deferred
    assert cmd.when_error is (code == 85)
    assert (cmd.when_local is None) is (code == 85)


@pytest.mark.parametrize(
    "when",
    [
        "120031022026",  # 31 Feb
        "120029022027",  # 29 Feb, not a leap year
        "240012092026",  # 24:00
        "120000092026",  # day 0
        "120012132026",  # month 13
        "120012090000",  # year 0
        "023029032026",  # DST gap in Paris
        "1530120920261",  # 13 digits
        "15301209",  # 8 digits
        "1234567890123456",  # 16 digits
        "1530 1209 202 s",  # 11 digits + cancel
    ],
)
def test_rejected_when(when: str) -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:{when}")
    assert cmd.when_error and cmd.when_local is None and cmd.when_utc is None
    assert cmd.comment is None
    assert code_of(cmd) == 85


@pytest.mark.parametrize(
    "last",
    ["1234567", "12345678901234567", "15h30 le 12/09", "153012092026x", "s"],
)
def test_not_date_like_is_comment(last: str) -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:{last}")
    assert not cmd.when_error and cmd.when_local is None
    assert cmd.comment == last
    assert code_of(cmd) == 80


def test_far_time_zone_edges_do_not_overflow() -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:235931129999", tz="America/Los_Angeles")
    assert code_of(cmd) == 85
    cmd = parse(f"{PASSWORD}:0170709901:32:000001010001", tz="Asia/Tokyo")
    assert code_of(cmd) == 85


def test_cancel_without_matching_job_is_96() -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32:153012092026s")
    assert decide(cmd, password_ok=True, cancel_matches=False) == 96
    assert cmd.when_utc == datetime(2026, 9, 12, 13, 30, tzinfo=UTC)


# --- decide: order of checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "password_ok", "extra", "code"),
    [
        (f"{PASSWORD}::32", True, 1, 80),  # numbers from the address or a list
        (f"{PASSWORD}::32", True, 0, 89),
        (f"{PASSWORD}:abc:32", True, 1, 80),  # an invalid one does not sink the others
        (f"{PASSWORD}::32", False, 1, 82),
        (f"{PASSWORD}:abc:32:153012092011", True, 0, 84),  # 84 before 85
        (f"{PASSWORD}:0170709901:32:153012092011", False, 0, 82),  # 82 before 85
        (":abc:32", False, 0, 88),
    ],
)
def test_decide_order(subject: str, password_ok: bool, extra: int, code: int) -> None:
    assert decide(parse(subject), password_ok=password_ok, extra_numbers=extra) == code


# --- hostile input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        ":" * (32 * 1024),
        ("0170709901:" * 4000),
        f"{PASSWORD}:" + ",".join(f"06{n:08d}" for n in range(3000)) + ":32",
        f"{PASSWORD}:" + ";" * 40000,
        "Re: " * 20000 + f"{PASSWORD}:0170709901",
        " " * 100000 + "x",
        f"{PASSWORD}:0170709901:32:" + "9" * 50000,
    ],
    ids=["colons", "numbers-as-fields", "3000-numbers", "semicolons", "prefixes", "spaces",
         "digits"],
)
def test_huge_subject_is_bounded(subject: str) -> None:
    start = time.perf_counter()
    cmd = parse(subject)
    assert time.perf_counter() - start < 5
    code_of(cmd)  # decides without error


def test_subject_is_capped() -> None:
    subject = f"{PASSWORD}:" + "1" * MAX_SUBJECT_CHARS
    cmd = parse(subject)
    assert cmd.invalid_numbers == ("1" * (MAX_SUBJECT_CHARS - len(PASSWORD) - 1),)


@pytest.mark.parametrize(
    ("subject", "comment"),
    [
        (f"{PASSWORD}:0170709901:32:a\r\nBcc: x@example.org", "a  Bcc: x@example.org"),
        (f"{PASSWORD}:0170709901:32:\x00nul\x7f", "nul"),
        (f"{PASSWORD}:0170709901:32:tab\there", "tab here"),
        (f"{PASSWORD}:0170709901:32:bad \udcff byte", "bad \ufffd byte"),
        (f"{PASSWORD}:0170709901:32:\u2028line\u2029", "line"),
    ],
)
def test_control_characters(subject: str, comment: str) -> None:
    cmd = parse(subject)
    assert cmd.comment == comment
    assert cmd.numbers == ("+33170709901",) and code_of(cmd) == 80


def test_control_characters_around_fields() -> None:
    cmd = parse(f"\t{PASSWORD}\r\n:\x0b0170709901\x00:32\x1f:\r\n153012092026\n")
    assert cmd.password == PASSWORD
    assert code_of(cmd) == 81


@pytest.mark.parametrize("subject", [None, "", "   ", b"FGB45L:0170709901", 42])
def test_odd_types_never_raise(subject: Any) -> None:
    cmd = parse(subject)
    assert isinstance(cmd, Command)


def test_bytes_are_decoded() -> None:
    cmd = parse(b"FGB45L:0170709901:32:caf\xc3\xa9 \xff")  # type: ignore[arg-type]
    assert cmd.comment == "café \ufffd"


def test_caller_bugs_raise() -> None:
    with pytest.raises(ValueError):
        parse_subject("x", region="FR", tz="Europe/Paris", now=datetime(2026, 6, 1))
    with pytest.raises(ValueError):
        parse_subject("x", region="FR", tz="Mars/Olympus", now=NOW)


def test_unknown_region_gives_invalid_national_numbers() -> None:
    cmd = parse_subject(f"{PASSWORD}:0170709901,+33170709901:32", region="ZZ",
                        tz="Europe/Paris", now=NOW)
    assert cmd.numbers == ("+33170709901",)
    assert cmd.invalid_numbers == ("0170709901",)


# --- the Command and its error --------------------------------------------------------


def test_password_is_not_in_repr() -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32")
    assert PASSWORD not in repr(cmd)
    assert cmd.password_given


def test_command_is_frozen() -> None:
    cmd = parse(f"{PASSWORD}:0170709901:32")
    with pytest.raises(AttributeError):
        cmd.ref = "x"  # type: ignore[misc]


def test_subject_error_carries_code_and_command() -> None:
    cmd = parse(f"{PASSWORD}:abc:32")
    with pytest.raises(SubjectError) as info:
        raise SubjectError(decide(cmd, password_ok=True), cmd)
    assert info.value.code == 84
    assert info.value.command is cmd
    assert "84" in str(info.value)
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
    assert SubjectError(88).command is None
