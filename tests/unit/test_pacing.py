from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgw.dispatch.pacing import next_open, parse_window

TZ = "Europe/Paris"


def paris(*args: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo(TZ))  # type: ignore[misc]


@pytest.mark.parametrize("now, expected", [
    (paris(2026, 6, 1, 9, 0), None),                       # Monday 09:00, open
    (paris(2026, 6, 1, 7, 59), paris(2026, 6, 1, 8, 0)),    # before opening
    (paris(2026, 6, 1, 20, 0), paris(2026, 6, 2, 8, 0)),    # closing time: tomorrow
    (paris(2026, 6, 6, 21, 0), paris(2026, 6, 8, 8, 0)),    # Saturday evening: Monday
    (paris(2026, 6, 7, 12, 0), paris(2026, 6, 8, 8, 0)),    # Sunday
])
def test_window(now: datetime, expected: datetime | None) -> None:
    w = parse_window("08:00-20:00 Mon-Sat")
    assert next_open(w, TZ, now.astimezone(UTC)) == expected


@pytest.mark.parametrize("bad", ["", "8-20", "20:00-08:00", "08:00-20:00 Funday", "25:00-26:00"])
def test_bad_windows(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_window(bad)


def test_day_lists_and_wrapping_ranges() -> None:
    assert parse_window("09:00-17:00 Mon,Wed,Fri").days == {0, 2, 4}
    assert parse_window("09:00-17:00 Sat-Mon").days == {5, 6, 0}
    assert parse_window("00:00-24:00").days == set(range(7))
