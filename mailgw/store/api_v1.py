"""What the REST API (mailgw.http.api_v1) reads and removes: an account's jobs with filters
and a cursor, one job only within its account, and a contact group's removal.

Every statement takes the account's id, so a caller cannot reach another account's rows by
naming their ids (the API answers 404 for them, as for a job that does not exist).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from mailgw.store.models import Account, ContactGroup, Delivery, GroupMember, Job

_WITH_ATTEMPTS = selectinload(Job.deliveries).selectinload(Delivery.attempt_rows)


def jobs(s: Session, account_id: int, *, state: str | None = None,
         since: datetime | None = None, until: datetime | None = None,
         ref: str | None = None, number: str | None = None, before_id: int | None = None,
         limit: int = 50) -> list[Job]:
    """The account's jobs, newest first (ids below `before_id`: the cursor), at most `limit`."""
    q = (select(Job).where(Job.account_id == account_id).options(_WITH_ATTEMPTS)
         .order_by(Job.id.desc()).limit(limit))
    if state:
        q = q.where(Job.state == state)
    if since is not None:
        q = q.where(Job.created_at >= since)
    if until is not None:
        q = q.where(Job.created_at < until)
    if ref:
        q = q.where(Job.ref == ref)
    if number:
        q = q.where(Job.id.in_(select(Delivery.job_id).where(Delivery.number == number)))
    if before_id is not None:
        q = q.where(Job.id < before_id)
    return list(s.scalars(q))


def job(s: Session, account_id: int, job_id: int) -> Job | None:
    """The job with its deliveries and attempts, only when the account owns it."""
    return s.scalar(select(Job).options(_WITH_ATTEMPTS)
                    .where(Job.id == job_id, Job.account_id == account_id))


def owns_job(s: Session, account_id: int, job_id: int) -> bool:
    return s.scalar(select(Job.id).where(Job.id == job_id, Job.account_id == account_id)) \
        is not None


def account(s: Session, account_id: int) -> Account | None:
    return s.get(Account, account_id)


def delete_group(s: Session, account_id: int, name: str) -> bool:
    """Remove a contact group and its members; False when the account has no such group."""
    group = s.scalar(select(ContactGroup).where(ContactGroup.account_id == account_id,
                                                ContactGroup.name == name))
    if group is None:
        return False
    s.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    s.delete(group)
    s.flush()
    return True
