"""The Sent page's query string → checked filters and a page number. Pure (no store, no
I/O): what the browser sent is echoed back into the form, what cannot be read is named and
ignored, never an error page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from mailgw.recipients import normalize_number
from mailgw.store.web import SentQuery
from mailgw.vocab import CHANNELS, DELIVERED_ALL, DELIVERED_NONE, IN_PROGRESS, PARTIALLY

OUTCOMES = (IN_PROGRESS, DELIVERED_ALL, DELIVERED_NONE, PARTIALLY)
FIELDS = ("state", "channel", "from", "to", "ref", "number", "text")
PER_PAGE = 25
MAX_TEXT = 200


@dataclass
class SentForm:
    values: dict[str, str]  # as typed, for the form
    query: SentQuery
    page: int = 1
    ignored: list[str] = field(default_factory=list)  # the fields that could not be read

    def link(self, **change: object) -> str:
        """The query string of this view with some values changed (pagination, export)."""
        params = {k: v for k, v in self.values.items() if v}
        params |= {k: str(v) for k, v in change.items()}
        return urlencode(params)


def _day(text: str, tz: ZoneInfo) -> datetime | None:
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=tz)
    except ValueError:
        return None


def parse(params: Mapping[str, str], tz: str, region: str) -> SentForm:
    zone = ZoneInfo(tz)
    values = {k: str(params.get(k, "")).strip()[:MAX_TEXT] for k in FIELDS}
    ignored: list[str] = []
    outcome = values["state"] if values["state"] in OUTCOMES else None
    if values["state"] and outcome is None:
        ignored.append("state")
    channel = values["channel"] if values["channel"] in CHANNELS else None
    if values["channel"] and channel is None:
        ignored.append("channel")
    since = _day(values["from"], zone) if values["from"] else None
    if values["from"] and since is None:
        ignored.append("from")
    until = _day(values["to"], zone) if values["to"] else None
    if values["to"] and until is None:
        ignored.append("to")
    if until is not None:
        until += timedelta(days=1)  # "to" is the last day shown, whole
    number, exact = None, False
    if values["number"]:
        number = normalize_number(values["number"], region)
        exact = number is not None
        if number is None:
            digits = "".join(c for c in values["number"] if c.isdigit())
            number = digits or None
            if number is None:
                ignored.append("number")
    try:
        page = max(1, min(int(params.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    query = SentQuery(outcome=outcome, channel=channel, since=since, until=until,
                      ref=values["ref"] or None, number=number, exact_number=exact,
                      text=values["text"] or None)
    return SentForm(values, query, page, ignored)
