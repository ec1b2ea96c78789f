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


def list_jobs(s: Session, state: str | None = None, limit: int = 1000,
              *, deliveries: bool = True) -> list[dict[str, Any]]:
    """`jobs list --json`; without `deliveries` (the text listing) each job's progress is
    counted by the database and its deliveries are left out."""
    found = rows.jobs_only(s, state, limit)
    ids = [job.id for job, _ in found]
    progress = rows.job_progress(s, ids)
    lines = _deliveries(s, ids) if deliveries else {}
    return [_shape(job, email, progress[job.id], lines.get(job.id) if deliveries else None)
            for job, email in found]


def get_job(s: Session, job_id: int) -> dict[str, Any] | None:
    """`jobs show`: the job, its progress and every delivery with its attempts, read as
    plain rows in batches (a campaign has 100,000)."""
    found = rows.job_and_account(s, job_id)
    if found is None:
        return None
    job, account = found
    return _shape(job, account.email if account else "", rows.job_progress(s, [job_id])[job_id],
                  _deliveries(s, [job_id]).get(job_id, []))


def _shape(job: Job, email: str, counts: dict[str, int],
           deliveries: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`job_dict`'s shape from counts and plain rows; no `deliveries` key when None."""
    shaped = {
        "id": job.id, "channel": job.channel, "account": email, "sender": job.sender,
        "message_id": job.message_id, "state": job.state, "outcome": job.outcome,
        "created_at": iso(job.created_at), "when": iso(job.send_at), "ref": job.ref,
        "comment": job.comment, "pages": job.pages,
        "progress": {"final": sum(n for st, n in counts.items() if st in FINAL),
                     "total": sum(counts.values())},
        "states": counts,
    }
    if deliveries is not None:
        shaped["deliveries"] = deliveries
    return shaped


def _deliveries(s: Session, job_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {j: [] for j in job_ids}
    for d, attempts in rows.job_deliveries(s, job_ids):
        found[d.job_id].append({
            "id": d.id, "number": d.number, "state": d.state, "pages_sent": d.pages_sent,
            "pages_total": d.pages_total, "csid": d.csid,
            "attempts": [{
                "started_at": iso(a.started_at), "ended_at": iso(a.ended_at),
                "result": a.result, "pages_sent": a.pages_sent, "csid": a.csid,
                "error_class": a.error_class, "error_text": a.error_text,
            } for a in attempts]})
    return found


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
