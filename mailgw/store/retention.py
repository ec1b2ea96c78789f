"""What `mailgw db purge` deletes (mailgw.ops.retention decides the cut-offs and reports).

Only what is over: jobs that are finished, outbox mails that were sent or given up.
Jobs go in chunks, one transaction each, so locks stay short.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update

from mailgw.store.db import Store
from mailgw.store.models import (
    Attempt,
    Delivery,
    Job,
    OutboxMail,
    ProcessedMessage,
    ProviderEvent,
)
from mailgw.vocab import JOB_FINISHED

_FINISHED = (Job.state.in_(JOB_FINISHED), Job.finished_at.is_not(None))
_OVER = OutboxMail.sent_at.is_not(None) | OutboxMail.dead_at.is_not(None)  # sent or dead


def documents(store: Store, before: datetime, *, dry_run: bool) -> int:
    """Drop the documents and sounds of the jobs finished before `before`; how many."""
    with store.tx() as s:
        docs = (select(Job.id).where(*_FINISHED, Job.finished_at < before,
                                     Job.document.is_not(None)))
        count = s.scalar(select(func.count()).select_from(docs.subquery())) or 0
        if not dry_run and count:
            s.execute(update(Job).where(Job.id.in_(docs.scalar_subquery()))
                      .values(document=None).execution_options(synchronize_session=False))
    return count


@dataclass
class Chunk:
    jobs: int = 0
    deliveries: int = 0
    attempts: int = 0
    outbox: int = 0  # sent or dead mails of these jobs


def jobs_chunk(store: Store, before: datetime, limit: int, *, skip: int = 0,
               dry_run: bool) -> Chunk:
    """Delete (or with `dry_run` count, from the `skip`th on) up to `limit` jobs finished
    before `before`, with their deliveries, attempts and sent mails. A mail not sent yet
    still goes out: it only loses its link to the job."""
    out = Chunk()
    with store.tx() as s:
        ids = list(s.scalars(select(Job.id).where(*_FINISHED, Job.finished_at < before)
                             .order_by(Job.id).limit(limit).offset(skip)))
        if not ids:
            return out
        dids = select(Delivery.id).where(Delivery.job_id.in_(ids)).scalar_subquery()
        out.attempts = s.scalar(select(func.count()).where(Attempt.delivery_id.in_(dids))) or 0
        out.deliveries = s.scalar(select(func.count()).where(Delivery.job_id.in_(ids))) or 0
        out.jobs = len(ids)
        if not dry_run:
            out.outbox = _rows(s.execute(delete(OutboxMail).where(
                OutboxMail.job_id.in_(ids), _OVER)))
            s.execute(update(OutboxMail).where(OutboxMail.job_id.in_(ids))
                      .values(job_id=None, delivery_id=None))
            s.execute(delete(Attempt).where(Attempt.delivery_id.in_(dids)))
            s.execute(delete(Delivery).where(Delivery.job_id.in_(ids)))
            s.execute(delete(Job).where(Job.id.in_(ids)))
    return out


def old_rows(store: Store, before: datetime, *, dry_run: bool) -> tuple[int, int, int]:
    """(outbox mails, idempotency keys, provider events) older than `before` deleted (or
    counted): sent or dead mails only."""
    with store.tx() as s:
        old_mail = (OutboxMail.created_at < before) & _OVER
        keys = ProcessedMessage.created_at < before
        events = ProviderEvent.received_at < before
        if dry_run:
            return (s.scalar(select(func.count()).where(old_mail)) or 0,
                    s.scalar(select(func.count()).where(keys)) or 0,
                    s.scalar(select(func.count()).where(events)) or 0)
        return (_rows(s.execute(delete(OutboxMail).where(old_mail))),
                _rows(s.execute(delete(ProcessedMessage).where(keys))),
                _rows(s.execute(delete(ProviderEvent).where(events))))


def _rows(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
