"""Jobs as the operator sees them: the JSON shape of `jobs list/show --json`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from mailgw.store import Account, Delivery, Job, Store

FINAL = ("delivered", "partial", "failed", "cancelled", "expired")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_dict(job: Job, account_email: str) -> dict[str, Any]:
    return {
        "id": job.id, "channel": job.channel, "account": account_email, "sender": job.sender,
        "message_id": job.message_id, "state": job.state, "outcome": job.outcome,
        "created_at": iso(job.created_at), "when": iso(job.send_at), "ref": job.ref,
        "comment": job.comment, "pages": job.pages,
        "progress": {"final": sum(1 for d in job.deliveries if d.state in FINAL),
                     "total": len(job.deliveries)},
        "deliveries": [{
            "id": d.id, "number": d.number, "state": d.state, "pages_sent": d.pages_sent,
            "pages_total": d.pages_total, "csid": d.csid,
            "attempts": [{
                "started_at": iso(a.started_at), "ended_at": iso(a.ended_at),
                "result": a.result, "pages_sent": a.pages_sent, "csid": a.csid,
                "error_class": a.error_class, "error_text": a.error_text,
            } for a in d.attempt_rows],
        } for d in job.deliveries],
    }


def list_jobs(s: Session, state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    q = (select(Job, Account.email).join(Account, Account.id == Job.account_id)
         .options(selectinload(Job.deliveries).selectinload(Delivery.attempt_rows))
         .order_by(Job.id.desc()).limit(limit))
    if state:
        q = q.where(Job.state == state)
    return [job_dict(job, email) for job, email in s.execute(q).all()]


def get_job(s: Session, job_id: int) -> dict[str, Any] | None:
    row = s.execute(select(Job, Account.email).join(Account, Account.id == Job.account_id)
                    .options(selectinload(Job.deliveries).selectinload(Delivery.attempt_rows))
                    .where(Job.id == job_id)).first()
    return job_dict(row[0], row[1]) if row else None


def status(s: Session) -> dict[str, Any]:
    """`mailgw status`: the queue and the outbox at a glance."""
    from sqlalchemy import func

    from mailgw.store import OutboxMail, utcnow

    now = utcnow()
    by_state = dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
                    .all())
    due = s.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.state.in_(("queued", "scheduled")), Delivery.next_attempt_at <= now)) or 0
    oldest_due = s.scalar(select(func.min(Delivery.next_attempt_at)).where(
        Delivery.state.in_(("queued", "scheduled")), Delivery.next_attempt_at <= now))
    next_scheduled = s.scalar(select(func.min(Delivery.next_attempt_at)).where(
        Delivery.state.in_(("queued", "scheduled")), Delivery.next_attempt_at > now))
    unsent = select(OutboxMail).where(OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None))
    outbox = s.scalar(select(func.count()).select_from(unsent.subquery())) or 0
    oldest_mail = s.scalar(select(func.min(OutboxMail.created_at)).where(
        OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None)))
    dead = s.scalar(select(func.count()).select_from(OutboxMail)
                    .where(OutboxMail.dead_at.is_not(None))) or 0
    jobs = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return {
        "deliveries": by_state, "due": due, "sending": by_state.get("sending", 0),
        "queue_lag_seconds": round((now - oldest_due).total_seconds(), 1) if oldest_due else 0,
        "next_scheduled": iso(next_scheduled), "jobs": jobs, "outbox_unsent": outbox,
        "outbox_oldest_age_seconds": round((now - oldest_mail).total_seconds(), 1)
        if oldest_mail else 0, "outbox_dead": dead,
    }


def document_purged(store: Store, job_id: int) -> bool:
    """A fax job whose PDF `db purge` dropped cannot be sent again (a voice job may name a
    library message, so only jobs that had a document of their own count)."""
    with store.read() as s:
        row = s.execute(select(Job.document_name, Job.document.is_(None))
                        .where(Job.id == job_id)).first()
    return bool(row and row[0] and row[1])
