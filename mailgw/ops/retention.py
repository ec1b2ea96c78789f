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

from mailgw.store import Store, utcnow
from mailgw.store import retention as rows

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
    report.documents = rows.documents(store, documents, dry_run=dry_run)
    while True:
        chunk = rows.jobs_chunk(store, records, CHUNK, skip=report.jobs if dry_run else 0,
                                dry_run=dry_run)
        if not chunk.jobs:
            break
        report.jobs += chunk.jobs
        report.deliveries += chunk.deliveries
        report.attempts += chunk.attempts
        report.outbox += chunk.outbox
        if on_chunk is not None:
            on_chunk(chunk.jobs)
    outbox, report.processed, report.provider_events = rows.old_rows(store, records,
                                                                     dry_run=dry_run)
    report.outbox += outbox
    return report
