"""Pure pacing rules: an account's sending window ("08:00-20:00 Mon-Sat" in its zone).

The call rate (TokenBucket) is in mailgw.dispatch.drivers.rate: drivers use it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    days: frozenset[int]  # 0 = Monday


def _days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        part = part.strip()
        if "-" in part:
            a, b = (p.strip()[:3] for p in part.split("-", 1))
            if a not in DAYS or b not in DAYS:
                raise ValueError(f"unknown day in {part!r}")
            i, j = DAYS.index(a), DAYS.index(b)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part[:3] in DAYS:
            out.add(DAYS.index(part[:3]))
        else:
            raise ValueError(f"unknown day {part!r}")
    return frozenset(out)


def parse_window(text: str) -> Window:
    """`HH:MM-HH:MM [days]`, days like `Mon-Sat` or `Mon,Wed,Fri` (default: every day)."""
    parts = text.split()
    if not parts or len(parts) > 2:
        raise ValueError("expected HH:MM-HH:MM and optional days, e.g. 08:00-20:00 Mon-Sat")
    m = _TIME.match(parts[0])
    if not m:
        raise ValueError(f"expected HH:MM-HH:MM, got {parts[0]!r}")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60):
        raise ValueError(f"not a time range: {parts[0]!r}")
    start = time(h1, m1)
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError("the window must end after it starts (no overnight windows)")
    days = _days(parts[1]) if len(parts) == 2 else frozenset(range(7))
    return Window(start, end, days)


def next_open(window: Window, tz: str, now: datetime) -> datetime | None:
    """None when `now` is inside the window; otherwise the next opening, as an aware time."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    if local.weekday() in window.days and window.start <= local.time() < window.end:
        return None
    for ahead in range(0, 8):
        day = (local + timedelta(days=ahead)).date()
        if day.weekday() not in window.days:
            continue
        opening = datetime.combine(day, window.start, tzinfo=zone)
        if opening > local:
            return opening
    return None  # no day at all: treated as always open rather than never sending
