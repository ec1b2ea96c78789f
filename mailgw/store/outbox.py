"""The outbox table: mails (and webhook calls) written with the change that causes them,
leased by a sender, marked sent or failed. Every statement mailgw.notify runs on it.

The claim differs per dialect: PostgreSQL skips rows another node holds locked (FOR UPDATE
SKIP LOCKED); SQLite has one writer at a time (BEGIN IMMEDIATE), so a plain SELECT is safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, or_, select, update
from sqlalchemy.orm import Session

from mailgw.store.db import Store
from mailgw.store.models import Account, Job, OutboxMail, utcnow

_INSERT = insert(cast(Table, OutboxMail.__table__))


def add_many(session: Session | Connection, rows: list[dict[str, Any]]) -> None:
    """Rows (kind, job_id, mail_from, rcpt_to, message_id, body) in one multi-row INSERT,
    without an ORM object per mail."""
    if not rows:
        return
    now = utcnow()
    session.execute(_INSERT, [{"delivery_id": None, "created_at": now, "next_attempt_at": now,
                               "tries": 0, **row} for row in rows])


def add(session: Session, *, kind: str, mail_from: str, rcpt_to: str, message_id: str,
        body: bytes, job_id: int | None = None, delivery_id: int | None = None) -> OutboxMail:
    """One row, added to the session (written at its next flush, with its neighbours)."""
    row = OutboxMail(kind=kind, job_id=job_id, delivery_id=delivery_id, mail_from=mail_from,
                     rcpt_to=rcpt_to, message_id=message_id, body=body,
                     next_attempt_at=utcnow())
    session.add(row)
    return row


def summary_queued(s: Session, job_id: int) -> bool:
    """A summary of the job is in the outbox (sent or not)."""
    return s.scalar(select(OutboxMail.id).where(OutboxMail.job_id == job_id,
                                                OutboxMail.kind == "summary").limit(1)) is not None


def webhook_secret(store: Store, job_id: int | None) -> str | None:
    """The secret of the account that owns the job, to sign its webhook calls."""
    if job_id is None:
        return None
    with store.read() as s:
        return s.scalar(select(Account.webhook_secret).join(Job, Job.account_id == Account.id)
                        .where(Job.id == job_id))


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    job_id: int | None
    mail_from: str
    rcpt_to: str
    message_id: str
    body: bytes
    tries: int
    created_at: datetime


def claim(store: Store, owner: str, limit: int, lease: timedelta) -> list[Claimed]:
    """Lease up to `limit` due rows: one SELECT (the stored bytes included, so no read per
    row) and one UPDATE for the whole batch, in one transaction."""
    now = utcnow()
    with store.tx() as s:
        q = (select(OutboxMail.id, OutboxMail.kind, OutboxMail.job_id, OutboxMail.mail_from,
                    OutboxMail.rcpt_to, OutboxMail.message_id, OutboxMail.body,
                    OutboxMail.tries, OutboxMail.created_at)
             .where(OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None),
                    OutboxMail.next_attempt_at <= now,
                    or_(OutboxMail.lease_expires_at.is_(None),
                        OutboxMail.lease_expires_at < now))
             .order_by(OutboxMail.next_attempt_at).limit(limit))
        if store.is_postgres:
            q = q.with_for_update(skip_locked=True)
        rows = [Claimed(*row) for row in s.execute(q)]
        if rows:
            s.execute(update(OutboxMail).where(OutboxMail.id.in_([r.id for r in rows]))
                      .values(lease_owner=owner, lease_expires_at=now + lease)
                      .execution_options(synchronize_session=False))
        return rows


def mark_sent_many(store: Store, ids: list[int]) -> None:
    if not ids:
        return
    with store.tx() as s:
        s.execute(update(OutboxMail).where(OutboxMail.id.in_(ids))
                  .values(sent_at=utcnow(), lease_owner=None, lease_expires_at=None,
                          last_error=None))


def mark_failed(store: Store, mail_id: int, *, tries: int, error: str, retry_at: datetime,
                dead_at: datetime | None) -> None:
    """A failed try: the lease released, the next try at `retry_at`, dead from `dead_at`."""
    with store.tx() as s:
        s.execute(update(OutboxMail).where(OutboxMail.id == mail_id).values(
            tries=tries, last_error=error[:2000], lease_owner=None, lease_expires_at=None,
            next_attempt_at=retry_at, dead_at=dead_at))
