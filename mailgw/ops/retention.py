"""Data retention: `mailgw db purge` keeps the store from growing for years.

Faxes and sounds are personal data and the bulk of the store, so they go first (after
`documents_days`); the records of finished jobs (deliveries, attempts, sent notices) go
after `days`, with the idempotency keys and provider events of the same age. Nothing that
is still in flight is touched: a job is purged only once it is finished, and an outbox
mail only once it was sent or given up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from mailgw.store import Attempt, Delivery, Job, OutboxMail, ProcessedMessage, Store, utcnow
from mailgw.store.models import ProviderEvent

FINISHED = ("done", "cancelled")
CHUNK = 500  # jobs per transaction: short locks, progress between chunks


@dataclass
class PurgeReport:
    documents: int = 0  # jobs whose document or sound was dropped
    jobs: int = 0
    deliveries: int = 0
    attempts: int = 0
    outbox: int = 0
    processed: int = 0
    provider_events: int = 0
    dry_run: bool = False
    cutoffs: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        return [f"{verb}: documents of {self.documents} finished jobs (before "
                f"{self.cutoffs.get('documents', '-')})",
                f"{verb}: {self.jobs} jobs, {self.deliveries} deliveries, {self.attempts} "
                f"attempts (finished before {self.cutoffs.get('records', '-')})",
                f"{verb}: {self.outbox} sent or dead outbox mails, {self.processed} "
                f"idempotency keys, {self.provider_events} provider events"]


def cutoffs(now: datetime, days: float, documents_days: float) -> tuple[datetime, datetime]:
    """(records, documents): documents never outlive the records they belong to."""
    if days <= 0 or documents_days < 0:
        raise ValueError("retention days must be positive (documents: zero or more)")
    return now - timedelta(days=days), now - timedelta(days=min(documents_days, days))


def purge(store: Store, days: float, documents_days: float, *, dry_run: bool = False,
          now: datetime | None = None, on_chunk: Callable[[int], None] | None = None
          ) -> PurgeReport:
    records, documents = cutoffs(now or utcnow(), days, documents_days)
    report = PurgeReport(dry_run=dry_run, cutoffs={
        "records": records.isoformat(" ", "minutes"),
        "documents": documents.isoformat(" ", "minutes")})
    finished_before = (Job.state.in_(FINISHED), Job.finished_at.is_not(None))
    with store.tx() as s:
        docs = (select(Job.id).where(*finished_before, Job.finished_at < documents,
                                     Job.document.is_not(None)))
        report.documents = s.scalar(select(func.count()).select_from(docs.subquery())) or 0
        if not dry_run and report.documents:
            s.execute(update(Job).where(Job.id.in_(docs.scalar_subquery()))
                      .values(document=None).execution_options(synchronize_session=False))
    while True:
        with store.tx() as s:
            ids = list(s.scalars(select(Job.id).where(*finished_before, Job.finished_at < records)
                                 .order_by(Job.id).limit(CHUNK)
                                 .offset(report.jobs if dry_run else 0)))
            if not ids:
                break
            dids = select(Delivery.id).where(Delivery.job_id.in_(ids)).scalar_subquery()
            report.attempts += s.scalar(select(func.count()).where(
                Attempt.delivery_id.in_(dids))) or 0
            report.deliveries += s.scalar(select(func.count()).where(
                Delivery.job_id.in_(ids))) or 0
            report.jobs += len(ids)
            if not dry_run:
                done_mail = OutboxMail.sent_at.is_not(None) | OutboxMail.dead_at.is_not(None)
                report.outbox += _rows(s.execute(delete(OutboxMail).where(
                    OutboxMail.job_id.in_(ids), done_mail)))
                s.execute(update(OutboxMail).where(OutboxMail.job_id.in_(ids))
                          .values(job_id=None, delivery_id=None))  # unsent: still goes out
                s.execute(delete(Attempt).where(Attempt.delivery_id.in_(dids)))
                s.execute(delete(Delivery).where(Delivery.job_id.in_(ids)))
                s.execute(delete(Job).where(Job.id.in_(ids)))
        if on_chunk is not None:
            on_chunk(len(ids))
    with store.tx() as s:
        old_mail = (OutboxMail.created_at < records) & (
            OutboxMail.sent_at.is_not(None) | OutboxMail.dead_at.is_not(None))
        keys = ProcessedMessage.created_at < records
        events = ProviderEvent.received_at < records
        if dry_run:
            report.outbox += s.scalar(select(func.count()).where(old_mail)) or 0
            report.processed = s.scalar(select(func.count()).where(keys)) or 0
            report.provider_events = s.scalar(select(func.count()).where(events)) or 0
        else:
            report.outbox += _rows(s.execute(delete(OutboxMail).where(old_mail)))
            report.processed = _rows(s.execute(delete(ProcessedMessage).where(keys)))
            report.provider_events = _rows(s.execute(delete(ProviderEvent).where(events)))
    return report


def _rows(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
