"""What the job page's pictures and sound read: whether an account's job still has its
document (the retention purge drops it) and, only when a picture must be drawn or the sound
served, the bytes themselves. Another account's job is not found."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailgw.store.models import Job


@dataclass(frozen=True)
class Media:
    channel: str
    pages: int
    type: str  # application/pdf | audio/wav …


def media(s: Session, account_id: int, job_id: int) -> Media | None:
    """The job's document kind and pages, None when it is not the account's or has none."""
    row = s.execute(select(Job.channel, Job.pages, Job.document_type)
                    .where(Job.id == job_id, Job.account_id == account_id,
                           Job.document.is_not(None))).first()
    return None if row is None else Media(row[0], int(row[1] or 0), row[2] or "")


def document(s: Session, account_id: int, job_id: int) -> bytes | None:
    return s.scalar(select(Job.document).where(Job.id == job_id,
                                               Job.account_id == account_id))
