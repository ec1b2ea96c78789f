"""Jobs as the operator sees them: the JSON shape of `jobs list/show --json`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from mailgw.store import Job, Store
from mailgw.store import views as rows
from mailgw.vocab import FINAL


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
    return [job_dict(job, email) for job, email in rows.jobs(s, state, limit)]


def get_job(s: Session, job_id: int) -> dict[str, Any] | None:
    found = rows.job(s, job_id)
    return job_dict(*found) if found else None


def status(s: Session) -> dict[str, Any]:
    """`mailgw status`: the queue and the outbox at a glance."""
    st = rows.status(s)
    now, oldest_due, oldest_mail = st["now"], st["oldest_due"], st["outbox_oldest"]
    by_state = st["deliveries"]
    return {
        "deliveries": by_state, "due": st["due"], "sending": by_state.get("sending", 0),
        "queue_lag_seconds": round((now - oldest_due).total_seconds(), 1) if oldest_due else 0,
        "next_scheduled": iso(st["next_scheduled"]), "jobs": st["jobs"],
        "outbox_unsent": st["outbox_unsent"],
        "outbox_oldest_age_seconds": round((now - oldest_mail).total_seconds(), 1)
        if oldest_mail else 0, "outbox_dead": st["outbox_dead"],
    }


def document_purged(store: Store, job_id: int) -> bool:
    """A fax job whose PDF `db purge` dropped cannot be sent again (a voice job may name a
    library message, so only jobs that had a document of their own count)."""
    return rows.document_purged(store, job_id)
