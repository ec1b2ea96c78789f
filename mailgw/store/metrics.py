"""What /metrics and `mailgw status` read of the store: counts by state, the outbox, the lag.

A few aggregate queries, each served by an index or a small table scan. On PostgreSQL a
scrape's queries share one statement timeout, so a busy store costs a scrape, never a pile
of waiting scrapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from mailgw.store.db import Store
from mailgw.store.models import Delivery, Job, OutboxMail, utcnow
from mailgw.vocab import WAITING


@dataclass
class StoreSnapshot:
    """What the store says right now; read in a thread, with a statement timeout."""

    jobs: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    outbox_unsent: int = 0
    outbox_dead: int = 0
    outbox_oldest_unsent_age: float = 0.0  # seconds; 0 when nothing waits
    queue_lag: float = 0.0  # now - the oldest due queued/scheduled delivery; 0 when none
    taken_at: datetime = field(default_factory=utcnow)


def aware_utc(value: object) -> datetime | None:
    """Aggregates may bypass the column type on SQLite: naive UTC (or text) comes back."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _age(now: datetime, then: datetime | None) -> float:
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0


def read_snapshot(store: Store, timeout: float = 5.0) -> StoreSnapshot:
    now = utcnow()
    snap = StoreSnapshot(taken_at=now)
    with store.read() as s:
        if store.is_postgres:
            s.execute(text(f"SET LOCAL statement_timeout = {max(int(timeout * 1000), 1)}"))
        snap.jobs = {st: int(n) for st, n in
                     s.execute(select(Job.state, func.count()).group_by(Job.state))}
        snap.deliveries = {st: int(n) for st, n in s.execute(
            select(Delivery.state, func.count()).group_by(Delivery.state))}
        unsent = (OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None))
        count, oldest = s.execute(select(func.count(), func.min(OutboxMail.created_at))
                                  .where(*unsent)).one()
        snap.outbox_unsent = int(count or 0)
        snap.outbox_oldest_unsent_age = _age(now, aware_utc(oldest))
        snap.outbox_dead = int(s.scalar(select(func.count()).select_from(OutboxMail)
                                        .where(OutboxMail.dead_at.is_not(None))) or 0)
        due = s.scalar(select(func.min(Delivery.next_attempt_at))
                       .where(Delivery.state.in_(WAITING), Delivery.next_attempt_at <= now))
        snap.queue_lag = _age(now, aware_utc(due))
    return snap


def probe_store(store: Store, timeout: float) -> float:
    """`SELECT 1` and the age in seconds of the oldest unsent outbox mail (0 when none)."""
    with store.read() as s:
        if store.is_postgres:
            s.execute(text(f"SET LOCAL statement_timeout = {max(int(timeout * 1000), 1)}"))
        s.execute(text("SELECT 1"))
        oldest = s.scalar(select(func.min(OutboxMail.created_at))
                          .where(OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None)))
    when = aware_utc(oldest)
    return max((utcnow() - when).total_seconds(), 0.0) if when is not None else 0.0
