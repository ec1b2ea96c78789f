"""The operators' statements: the accounts list, the queue right now, dead outbox mails
(retry or drop), and the journal of admin actions (mailgw.accounts.operators decides; this
module only reads and writes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from mailgw.store.metrics import aware_utc
from mailgw.store.models import Account, Delivery, Job, OutboxMail, utcnow
from mailgw.store.models_admin import AdminAction
from mailgw.store.models_web import WebLogin
from mailgw.vocab import SENDING, WAITING

# -- the journal -----------------------------------------------------------------------------


def record(s: Session, *, actor_id: int | None, actor: str, action: str, target: str,
           detail: dict[str, object] | None = None) -> AdminAction:
    row = AdminAction(at=utcnow(), actor_id=actor_id, actor=actor, action=action,
                      target=target[:400],
                      detail=json.dumps(detail, ensure_ascii=False, sort_keys=True)
                      if detail else None)
    s.add(row)
    s.flush()
    return row


def journal(s: Session, *, offset: int, limit: int) -> tuple[list[AdminAction], int]:
    """The newest actions first, and how many there are."""
    total = s.scalar(select(func.count()).select_from(AdminAction)) or 0
    rows = s.scalars(select(AdminAction).order_by(AdminAction.id.desc())
                     .offset(offset).limit(limit))
    return list(rows), total


# -- accounts --------------------------------------------------------------------------------

def accounts(s: Session) -> list[tuple[Account, bool]]:
    """Every account, by address, with whether its web password is set."""
    stmt = (select(Account, WebLogin.password_hash.is_not(None))
            .join(WebLogin, WebLogin.account_id == Account.id, isouter=True)
            .order_by(Account.email))
    return [(a, bool(web)) for a, web in s.execute(stmt)]


def account(s: Session, account_id: int) -> Account | None:
    return s.get(Account, account_id)


def web_password_set(s: Session, account_id: int) -> bool:
    return s.scalar(select(WebLogin.password_hash)
                    .where(WebLogin.account_id == account_id)) is not None


# -- the queue now ---------------------------------------------------------------------------

@dataclass
class QueueNow:
    deliveries: dict[str, int] = field(default_factory=dict)  # by state
    jobs: dict[str, int] = field(default_factory=dict)  # by state
    oldest_due: datetime | None = None  # the oldest waiting delivery already due
    next_due: datetime | None = None  # the next waiting delivery not due yet
    busy: dict[str, int] = field(default_factory=dict)  # calls in flight, by node (lease owner)
    outbox_unsent: int = 0
    outbox_dead: int = 0


def queue_now(s: Session, now: datetime | None = None) -> QueueNow:
    now = now or utcnow()
    q = QueueNow()
    q.deliveries = {st: int(n) for st, n in
                    s.execute(select(Delivery.state, func.count()).group_by(Delivery.state))}
    q.jobs = {st: int(n) for st, n in s.execute(select(Job.state, func.count())
                                                .group_by(Job.state))}
    waiting = Delivery.state.in_(WAITING)
    q.oldest_due = aware_utc(s.scalar(select(func.min(Delivery.next_attempt_at))
                                      .where(waiting, Delivery.next_attempt_at <= now)))
    q.next_due = aware_utc(s.scalar(select(func.min(Delivery.next_attempt_at))
                                    .where(waiting, Delivery.next_attempt_at > now)))
    q.busy = {owner or "?": int(n) for owner, n in s.execute(
        select(Delivery.lease_owner, func.count()).where(Delivery.state == SENDING)
        .group_by(Delivery.lease_owner))}
    q.outbox_unsent = int(s.scalar(select(func.count()).select_from(OutboxMail).where(
        OutboxMail.sent_at.is_(None), OutboxMail.dead_at.is_(None))) or 0)
    q.outbox_dead = int(s.scalar(select(func.count()).select_from(OutboxMail)
                                 .where(OutboxMail.dead_at.is_not(None))) or 0)
    return q


# -- dead outbox mails -----------------------------------------------------------------------

@dataclass(frozen=True)
class DeadMail:
    id: int
    kind: str
    job_id: int | None
    rcpt_to: str
    tries: int
    created_at: datetime
    dead_at: datetime
    last_error: str


_DEAD = (select(OutboxMail.id, OutboxMail.kind, OutboxMail.job_id, OutboxMail.rcpt_to,
                OutboxMail.tries, OutboxMail.created_at, OutboxMail.dead_at,
                OutboxMail.last_error)
         .where(OutboxMail.dead_at.is_not(None), OutboxMail.sent_at.is_(None)))


def _dead(row: Any) -> DeadMail:
    i, kind, job_id, to, tries, created, dead, error = row
    return DeadMail(i, kind, job_id, to, tries, created, dead or created, error or "")


def dead_mails(s: Session, limit: int = 200) -> list[DeadMail]:
    """The outbox mails given up on, newest first (never their bodies)."""
    stmt = _DEAD.order_by(OutboxMail.dead_at.desc(), OutboxMail.id.desc()).limit(limit)
    return [_dead(row) for row in s.execute(stmt)]


def dead_mail(s: Session, mail_id: int) -> DeadMail | None:
    row = s.execute(_DEAD.where(OutboxMail.id == mail_id)).first()
    return None if row is None else _dead(row)


def revive(s: Session, mail_id: int) -> bool:
    """A dead mail is due again now (one more try; it dies again if that fails too)."""
    result = s.execute(update(OutboxMail).where(OutboxMail.id == mail_id,
                                                OutboxMail.dead_at.is_not(None),
                                                OutboxMail.sent_at.is_(None))
                       .values(dead_at=None, next_attempt_at=utcnow(), lease_owner=None,
                               lease_expires_at=None))
    return bool(getattr(result, "rowcount", 0))


def drop(s: Session, mail_id: int) -> bool:
    """A dead mail deleted (it will never go)."""
    result = s.execute(delete(OutboxMail).where(OutboxMail.id == mail_id,
                                                OutboxMail.dead_at.is_not(None),
                                                OutboxMail.sent_at.is_(None)))
    return bool(getattr(result, "rowcount", 0))
