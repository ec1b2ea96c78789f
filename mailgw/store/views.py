"""Jobs as people see them: what the CLI, the notices, the summaries and the CSV report read.

Read-only statements (the jobs service writes; mailgw.jobs.views and mailgw.notify shape
what is read here).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from mailgw.store.db import Store
from mailgw.store.models import Account, Attempt, Delivery, Job, OutboxMail, utcnow
from mailgw.vocab import FINAL_STATES, JOB_ACTIVE, WAITING

# -- the operator's view: `jobs list/show`, `status` -----------------------------------------

_WITH_ATTEMPTS = selectinload(Job.deliveries).selectinload(Delivery.attempt_rows)


def jobs(s: Session, state: str | None = None, limit: int = 1000) -> list[tuple[Job, str]]:
    """(job with its deliveries and attempts, account address), newest first."""
    q = (select(Job, Account.email).join(Account, Account.id == Job.account_id)
         .options(_WITH_ATTEMPTS).order_by(Job.id.desc()).limit(limit))
    if state:
        q = q.where(Job.state == state)
    return [(job, email) for job, email in s.execute(q).all()]


def job(s: Session, job_id: int) -> tuple[Job, str] | None:
    row = s.execute(select(Job, Account.email).join(Account, Account.id == Job.account_id)
                    .options(_WITH_ATTEMPTS).where(Job.id == job_id)).first()
    return (row[0], row[1]) if row else None


def jobs_only(s: Session, state: str | None = None, limit: int = 1000
              ) -> list[tuple[Job, str]]:
    """(job, account address), newest first, without their deliveries (`job_deliveries`
    reads those as plain rows: a campaign has 100,000)."""
    q = (select(Job, Account.email).join(Account, Account.id == Job.account_id)
         .order_by(Job.id.desc()).limit(limit))
    if state:
        q = q.where(Job.state == state)
    return [(job, email) for job, email in s.execute(q).all()]


def job_progress(s: Session, job_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per job and state, counted by the database."""
    found: dict[int, dict[str, int]] = {j: {} for j in job_ids}
    for job_id, state, n in s.execute(
            select(Delivery.job_id, Delivery.state, func.count())
            .where(Delivery.job_id.in_(job_ids)).group_by(Delivery.job_id, Delivery.state)):
        found[job_id][state] = n
    return found


_DELIVERY_COLS = (Delivery.job_id, Delivery.id, Delivery.number, Delivery.state,
                  Delivery.pages_sent, Delivery.pages_total, Delivery.csid)
_ATTEMPT_COLS = (Attempt.delivery_id, Attempt.started_at, Attempt.ended_at, Attempt.result,
                 Attempt.pages_sent, Attempt.csid, Attempt.error_class, Attempt.error_text)


def job_deliveries(s: Session, job_ids: list[int], batch: int = 5000
                   ) -> Iterator[tuple[Any, list[Any]]]:
    """Each delivery of these jobs (job and id order) with its attempts, as plain rows
    read `batch` at a time: the ORM's objects cost ten times more for a campaign."""
    q = (select(*_DELIVERY_COLS).where(Delivery.job_id.in_(job_ids))
         .order_by(Delivery.job_id, Delivery.id).execution_options(yield_per=batch))
    for part in s.execute(q).partitions():
        ids = [d.id for d in part]
        tried: dict[int, list[Any]] = {}
        for a in s.execute(select(*_ATTEMPT_COLS).where(Attempt.delivery_id.in_(ids))
                           .order_by(Attempt.id)):
            tried.setdefault(a.delivery_id, []).append(a)
        for d in part:
            yield d, tried.get(d.id, [])


def status(s: Session) -> dict[str, Any]:
    """The queue and the outbox at a glance, as counts and times (`now` included)."""
    now = utcnow()
    waiting = Delivery.state.in_(WAITING)
    unsent = (OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None))
    return {
        "now": now,
        "deliveries": dict(s.execute(select(Delivery.state, func.count())
                                     .group_by(Delivery.state)).all()),
        "due": s.scalar(select(func.count()).select_from(Delivery).where(
            waiting, Delivery.next_attempt_at <= now)) or 0,
        "oldest_due": s.scalar(select(func.min(Delivery.next_attempt_at)).where(
            waiting, Delivery.next_attempt_at <= now)),
        "next_scheduled": s.scalar(select(func.min(Delivery.next_attempt_at)).where(
            waiting, Delivery.next_attempt_at > now)),
        "outbox_unsent": s.scalar(select(func.count()).select_from(
            select(OutboxMail).where(*unsent).subquery())) or 0,
        "outbox_oldest": s.scalar(select(func.min(OutboxMail.created_at)).where(*unsent)),
        "outbox_dead": s.scalar(select(func.count()).select_from(OutboxMail)
                                .where(OutboxMail.dead_at.is_not(None))) or 0,
        "jobs": dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all()),
    }


def document_purged(store: Store, job_id: int) -> bool:
    """The job had a document of its own, and `db purge` dropped it."""
    with store.read() as s:
        row = s.execute(select(Job.document_name, Job.document.is_(None))
                        .where(Job.id == job_id)).first()
    return bool(row and row[0] and row[1])


def answers_due(store: Store) -> set[str] | None:
    """The Message-IDs of every mail the outbox holds and has not given up; None while a
    job is still calling (its answers are not all written yet)."""
    with store.read() as s:
        if s.scalar(select(func.count()).select_from(Job).where(Job.state == JOB_ACTIVE)):
            return None
        return set(s.scalars(select(OutboxMail.message_id).where(OutboxMail.dead_at.is_(None))))


# -- what a notice, a summary and the CSV report read ----------------------------------------

# Built once: building a statement costs more Python than running it on a small table.
_ATTEMPTS = (select(Attempt).where(Attempt.delivery_id == bindparam("delivery_id"))
             .order_by(Attempt.id))


def attempts(s: Session, delivery_id: int) -> list[Attempt]:
    return list(s.scalars(_ATTEMPTS, {"delivery_id": delivery_id}))


def deliveries(s: Session, job_id: int) -> list[Delivery]:
    return list(s.scalars(select(Delivery).where(Delivery.job_id == job_id)
                          .order_by(Delivery.id)))


def count_deliveries(s: Session, job_id: int, *, final: bool = False) -> int:
    """The job's deliveries (only the final ones with `final`)."""
    q = select(func.count()).select_from(Delivery).where(Delivery.job_id == job_id)
    if final:
        q = q.where(Delivery.state.in_(FINAL_STATES))
    return s.scalar(q) or 0


def account(s: Session, account_id: int) -> Account | None:
    return s.get(Account, account_id)


def job_and_account(s: Session, job_id: int) -> tuple[Job, Account | None] | None:
    """A job (its deliveries and attempts load when read) and its account."""
    found = s.get(Job, job_id)
    return None if found is None else (found, s.get(Account, found.account_id))
