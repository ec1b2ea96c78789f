"""What the CSV report and the summary read of a job's deliveries, in batches.

A campaign has 100,000 deliveries: they are never loaded at once. One SELECT per pass,
read `batch` rows at a time (`yield_per`: a server-side cursor on PostgreSQL, SQLite's
cursor stepped as it goes), so memory stays flat whatever the job's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailgw.store.models import Attempt, Delivery

BATCH = 2000  # rows read at a time


class ReportRow(NamedTuple):
    id: int
    number: str
    state: str
    finished_at: datetime | None
    pages_sent: int
    pages_total: int | None
    csid: str | None
    attempts: int
    columns: str | None  # JSON: the list's own columns


_ROW = (Delivery.id, Delivery.number, Delivery.state, Delivery.finished_at, Delivery.pages_sent,
        Delivery.pages_total, Delivery.csid, Delivery.attempts, Delivery.columns)


def delivery_batches(s: Session, job_id: int, batch: int = BATCH,
                     limit: int | None = None) -> Iterator[list[ReportRow]]:
    """The job's deliveries in id order (the list's order), `batch` rows at a time."""
    q = select(*_ROW).where(Delivery.job_id == job_id).order_by(Delivery.id)
    if limit is not None:
        q = q.limit(limit)
    result = s.execute(q.execution_options(yield_per=batch))
    for part in result.partitions():
        yield [ReportRow(*r) for r in part]


def column_sets(s: Session, job_id: int, batch: int = BATCH) -> Iterator[str]:
    """The `columns` JSON of the job's deliveries in id order, streamed (the report's extra
    columns are their keys, in the order they first appear)."""
    q = (select(Delivery.columns).where(Delivery.job_id == job_id, Delivery.columns.is_not(None))
         .order_by(Delivery.id))
    for part in s.execute(q.execution_options(yield_per=batch)).partitions():
        for (text,) in part:
            if text is not None:
                yield text


def last_attempts(s: Session, delivery_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """(result, error_text) of each delivery's last attempt (a voice report's STATUS_TEXT)."""
    last = (select(func.max(Attempt.id)).where(Attempt.delivery_id.in_(delivery_ids))
            .group_by(Attempt.delivery_id))
    return {d: (result, text) for d, result, text in s.execute(
        select(Attempt.delivery_id, Attempt.result, Attempt.error_text)
        .where(Attempt.id.in_(last)))}


def state_counts(s: Session, job_id: int) -> dict[str, int]:
    """How many of the job's deliveries are in each state."""
    return {state: n for state, n in s.execute(
        select(Delivery.state, func.count()).where(Delivery.job_id == job_id)
        .group_by(Delivery.state))}
