"""The web space's statements: web passwords, invitations, sessions (mailgw.accounts.weblogin
and mailgw.http.web.sessions decide; this module only reads and writes), and the Sent list
and the job page of one account (mailgw.http.web)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session, selectinload

from mailgw.store.models import Account, Delivery, Job
from mailgw.store.models_web import WebInvite, WebLogin, WebSession

# -- web passwords and invitations -----------------------------------------------------------


def login(s: Session, account_id: int, *, create: bool = False) -> WebLogin | None:
    """The account's web login row (made empty with `create`)."""
    row = s.get(WebLogin, account_id)
    if row is None and create:
        row = WebLogin(account_id=account_id)
        s.add(row)
        s.flush()
    return row


def add_invite(s: Session, account_id: int, token_hash: str, expires_at: datetime) -> None:
    s.add(WebInvite(account_id=account_id, token_hash=token_hash, expires_at=expires_at))


def live_invite(s: Session, token_hash: str, now: datetime) -> WebInvite | None:
    """The invitation with this token, if unused and not expired."""
    return s.scalar(select(WebInvite).where(WebInvite.token_hash == token_hash,
                                            WebInvite.used_at.is_(None),
                                            WebInvite.expires_at > now))


def close_invites(s: Session, account_id: int, now: datetime) -> None:
    """Every open invitation of the account is used up (one link sets the password once)."""
    for invite in s.scalars(select(WebInvite).where(WebInvite.account_id == account_id,
                                                    WebInvite.used_at.is_(None))):
        invite.used_at = now


# -- sessions --------------------------------------------------------------------------------

def add_session(s: Session, **fields: object) -> WebSession:
    row = WebSession(**fields)
    s.add(row)
    s.flush()
    return row


def session_by_hash(s: Session, token_hash: str, now: datetime) -> WebSession | None:
    return s.scalar(select(WebSession).where(WebSession.token_hash == token_hash,
                                             WebSession.expires_at > now))


def get_session(s: Session, session_id: int) -> WebSession | None:
    return s.get(WebSession, session_id)


def end_session(s: Session, session_id: int) -> None:
    s.execute(delete(WebSession).where(WebSession.id == session_id))


def end_sessions(s: Session, account_id: int) -> int:
    """Log out everywhere: every session of the account; how many there were."""
    result = s.execute(delete(WebSession).where(WebSession.account_id == account_id))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_sessions(s: Session, now: datetime) -> None:
    s.execute(delete(WebSession).where(WebSession.expires_at <= now))


# -- the Sent list and the job page ----------------------------------------------------------

@dataclass(frozen=True)
class SentQuery:
    """The Sent page's filters, already checked (mailgw.http.web.filters)."""

    outcome: str | None = None  # in_progress | delivered_all | delivered_none | partial
    channel: str | None = None
    since: datetime | None = None  # created at or after (UTC)
    until: datetime | None = None  # created before (UTC)
    ref: str | None = None  # contains, case-insensitive
    number: str | None = None  # E.164 (exact) or digits (contained)
    exact_number: bool = False
    text: str | None = None  # in the comment, case-insensitive


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def sent_jobs(s: Session, account_id: int, q: SentQuery, *, offset: int, limit: int,
              with_deliveries: bool = True) -> tuple[list[Job], int]:
    """The account's jobs that match, newest first (with deliveries and attempts unless
    `with_deliveries` is false: the CSV export reads them in batches), and how many match
    in all."""
    where = [Job.account_id == account_id]
    if q.outcome:
        where.append(Job.outcome == q.outcome)
    if q.channel:
        where.append(Job.channel == q.channel)
    if q.since:
        where.append(Job.created_at >= q.since)
    if q.until:
        where.append(Job.created_at < q.until)
    if q.ref:
        where.append(func.lower(Job.ref).like(_like(q.ref), escape="\\"))
    if q.text:
        where.append(func.lower(Job.comment).like(_like(q.text), escape="\\"))
    if q.number:
        match = (Delivery.number == q.number if q.exact_number
                 else Delivery.number.like(_like(q.number), escape="\\"))
        where.append(exists().where(Delivery.job_id == Job.id, match))
    total = s.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    q_jobs = select(Job).where(*where).order_by(Job.id.desc()).offset(offset).limit(limit)
    if with_deliveries:
        q_jobs = q_jobs.options(selectinload(Job.deliveries).selectinload(Delivery.attempt_rows))
    return list(s.scalars(q_jobs)), total


def account_job(s: Session, account_id: int, job_id: int, *,
                with_deliveries: bool = True) -> Job | None:
    """The job, only if it is the account's (another account's job is not found); its
    deliveries and attempts loaded with it unless `with_deliveries` is false."""
    q = select(Job).where(Job.id == job_id, Job.account_id == account_id)
    if with_deliveries:
        q = q.options(selectinload(Job.deliveries).selectinload(Delivery.attempt_rows))
    return s.scalar(q)


def account_of(s: Session, account_id: int) -> Account | None:
    return s.get(Account, account_id)
