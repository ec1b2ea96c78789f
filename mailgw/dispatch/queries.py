"""The dispatcher's SQL: claim with a lease, heartbeat, reap, record, cancel, retry.

Each function is one short transaction. On PostgreSQL the claim skips rows another node
holds (`FOR UPDATE SKIP LOCKED`) and serialises per destination number with a
transaction-scoped advisory lock; on SQLite, BEGIN IMMEDIATE serialises claimers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any

from sqlalchemy import CTE, Integer, and_, bindparam, func, or_, select, text, union_all, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mailgw import metrics
from mailgw.config import RetrySettings
from mailgw.dispatch import states
from mailgw.dispatch.drivers.base import PROVIDER_ERROR, CallResult
from mailgw.dispatch.pacing import next_open, parse_window
from mailgw.store import Account, Attempt, Delivery, Job, OutboxMail, Store, utcnow
from mailgw.store.models import UtcDateTime

OnFinal = Callable[[Session, Job, Delivery], None]
NOTIFY_CHANNEL = "mailgw_queue"


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    job_id: int
    channel: str
    number: str
    attempt: int  # the number of the call about to be placed
    pages_total: int | None
    first_page: int
    sound_seconds: float | None
    message_id: str | None = None  # of the mail that made the job, for the logs
    retry_policy: str | None = None  # the account's overrides of [dispatch.retry]
    job_created: datetime | None = None  # with the ids, makes the call's key unique per store

    @property
    def idempotency_key(self) -> str:
        """The same for a call placed again after a crash (the reaper keeps the attempt
        number), different across stores: a reset database or a second mailgw sharing one
        HylaFAX or provider account never adopts another's call for its delivery 1."""
        seed = f"{self.job_id}|{self.message_id or ''}|{self.job_created or ''}"
        return f"d{self.delivery_id}-a{self.attempt}-{sha256(seed.encode()).hexdigest()[:8]}"


def notify_queue(s: Session) -> None:
    """PostgreSQL: wake the dispatchers on commit (a hint; they poll anyway)."""
    bind = s.get_bind()
    if bind.dialect.name == "postgresql":
        s.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _free_numbers(s: Session, store: Store, numbers: list[str]) -> set[str]:
    """The numbers with no call in flight (checked under a per-number lock on PostgreSQL):
    one round trip for the locks, one for the check, whatever the batch."""
    free = set(numbers)
    if store.is_postgres and free:
        free = set(s.scalars(text("SELECT n FROM unnest(CAST(:ns AS text[])) AS n"
                                  " WHERE pg_try_advisory_xact_lock(hashtext(n))"),
                             {"ns": sorted(free)}))
    if free:
        free -= set(s.scalars(select(Delivery.number).where(Delivery.state == states.SENDING,
                                                             Delivery.number.in_(free))))
    return free


def _due(state: str, now: Any, n: Any, pg: bool) -> CTE:
    """Due deliveries in one state, oldest first. One state at a time keeps the order of
    ix_delivery_due (state, next_attempt_at), so the claim never sorts the whole queue."""
    q = (select(Delivery.id, Delivery.next_attempt_at, Delivery.number, Delivery.job_id,
                Job.channel, Job.duration, Job.message_id, Job.state.label("job_state"),
                Job.created_at.label("job_created"), Account.send_window, Account.tz,
                Account.retry_policy)
         .join(Job, Job.id == Delivery.job_id).join(Account, Account.id == Job.account_id)
         .where(Delivery.state == state, Delivery.next_attempt_at <= now)
         .order_by(Delivery.next_attempt_at, Delivery.id).limit(n))
    if pg:
        q = q.with_for_update(skip_locked=True, of=Delivery)
    return q.cte(f"due_{state}")


_CLAIM_QUERY: dict[bool, Any] = {}


def _claim_query(pg: bool) -> Any:
    """The candidates' SELECT, built once (parameters :now and :n): building it costs more
    Python than running it."""
    query = _CLAIM_QUERY.get(pg)
    if query is None:
        now, n = bindparam("now", type_=UtcDateTime()), bindparam("n", type_=Integer())
        due = [_due(st, now, n, pg) for st in (states.QUEUED, states.SCHEDULED)]
        both = union_all(select(due[0]), select(due[1])).subquery()
        query = _CLAIM_QUERY[pg] = (select(both).order_by(both.c.next_attempt_at, both.c.id)
                                    .limit(n))
    return query


def claim(store: Store, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Take up to `limit` due deliveries and mark them `sending` under our lease.

    Honours the account's sending window (a delivery outside it is pushed to the next
    opening) and places at most one call at a time to the same number. A few statements
    per transaction, whatever `limit` is: claiming a batch costs about what one costs.
    """
    if limit <= 0:
        return []
    now = utcnow()
    with store.tx() as s:
        rows = s.execute(_claim_query(store.is_postgres), {"now": now, "n": limit * 4}).all()
        candidates = []
        numbers: set[str] = set()
        for row in rows:
            if row.send_window:
                try:
                    opening = next_open(parse_window(row.send_window), row.tz, now)
                except ValueError:
                    opening = None  # a broken window never blocks sending
                if opening is not None:
                    s.execute(update(Delivery).where(Delivery.id == row.id)
                              .values(next_attempt_at=opening))
                    continue
            if row.number not in numbers:
                numbers.add(row.number)
                candidates.append(row)
        chosen: list[Row[Any]] = []
        while candidates and len(chosen) < limit:
            take = candidates[:limit - len(chosen)]
            candidates = candidates[len(take):]
            free = _free_numbers(s, store, [r.number for r in take])
            chosen += [r for r in take if r.number in free]
        if not chosen:
            return []
        claimed_at = bindparam("claimed_at", now, type_=UtcDateTime())
        held = {r.id: r for r in s.execute(
            update(Delivery).where(Delivery.id.in_([r.id for r in chosen]))
            .values(state=states.SENDING, lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=Delivery.attempts + 1,
                    first_attempt_at=func.coalesce(Delivery.first_attempt_at, claimed_at))
            .returning(Delivery.id, Delivery.attempts, Delivery.pages_sent,
                       Delivery.pages_total)
            .execution_options(synchronize_session=False))}
        scheduled = {r.job_id for r in chosen if r.job_state == "scheduled"}
        if scheduled:
            s.execute(update(Job).where(Job.id.in_(scheduled), Job.state == "scheduled")
                      .values(state="active").execution_options(synchronize_session=False))
        return [Claim(r.id, r.job_id, r.channel, r.number, held[r.id].attempts,
                      held[r.id].pages_total, held[r.id].pages_sent + 1, r.duration,
                      r.message_id, r.retry_policy, r.job_created)
                for r in chosen if r.id in held]


def load_document(store: Store, job_id: int) -> bytes | None:
    with store.read() as s:
        return s.scalar(select(Job.document).where(Job.id == job_id))


def heartbeat(store: Store, owner: str, ids: list[int], lease_seconds: float
              ) -> tuple[int, list[int]]:
    """Extend our leases; returns how many we still hold and which were asked to cancel."""
    if not ids:
        return 0, []
    with store.tx() as s:
        result = s.execute(update(Delivery)
                           .where(Delivery.id.in_(ids), Delivery.lease_owner == owner,
                                  Delivery.state == states.SENDING)
                           .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds)))
        cancel = list(s.scalars(select(Delivery.id).where(Delivery.id.in_(ids),
                                                          Delivery.cancel_requested.is_(True))))
        return int(result.rowcount or 0), cancel  # type: ignore[attr-defined]


def reap(store: Store) -> int:
    """Give deliveries whose worker died (lease expired) back to the queue.

    The attempt is not counted: the next claim places the same call again under the same
    idempotency key, so a driver that can find it (HylaFAX's JOBINFO tag, Sinch's label)
    follows the call already on the line instead of dialling a second time. A delivery
    that kills its worker every time still ends at the kill time (`expired`)."""
    now = utcnow()
    with store.tx() as s:
        result = s.execute(update(Delivery)
                           .where(Delivery.state == states.SENDING,
                                  or_(Delivery.lease_expires_at.is_(None),
                                      Delivery.lease_expires_at < now))
                           .values(state=states.QUEUED, lease_owner=None, lease_expires_at=None,
                                   next_attempt_at=now, attempts=Delivery.attempts - 1))
        if result.rowcount:  # type: ignore[attr-defined]
            notify_queue(s)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def release(store: Store, owner: str, ids: list[int]) -> int:
    """On shutdown: hand back what we hold without counting an attempt."""
    if not ids:
        return 0
    now = utcnow()
    with store.tx() as s:
        result = s.execute(update(Delivery)
                           .where(Delivery.id.in_(ids), Delivery.lease_owner == owner,
                                  Delivery.state == states.SENDING)
                           .values(state=states.QUEUED, lease_owner=None, lease_expires_at=None,
                                   next_attempt_at=now, attempts=Delivery.attempts - 1))
        notify_queue(s)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Finished:
    """A call that has ended, waiting to be recorded."""

    claim: Claim
    result: CallResult
    started: datetime
    ended: datetime
    policy: RetrySettings


def record(store: Store, owner: str, claim_: Claim, res: CallResult, driver: str,
           started: datetime, ended: datetime, policy: RetrySettings,
           on_final: OnFinal) -> str | None:
    """Write the Attempt and move the delivery; returns its new state (None if lease lost).

    `on_final` runs in the same transaction when the delivery reaches a final state,
    so its notice is committed with it (the outbox rule).
    """
    return record_many(store, owner, [Finished(claim_, res, started, ended, policy)], driver,
                       on_final)[0]


def record_many(store: Store, owner: str, done: Sequence[Finished], driver: str,
                on_final: OnFinal) -> list[str | None]:
    """`record` for several ended calls in one transaction (one commit, a few statements
    for the whole batch); the new state of each, in order (None where the lease was lost)."""
    if not done:
        return []
    with store.tx() as s:
        ids = [f.claim.delivery_id for f in done]
        rows = {d.id: d for d in s.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
        # Earlier provider errors set the back-off of a new one (read before this batch's
        # attempts are added).
        errors = [f.claim.delivery_id for f in done if f.result.result == PROVIDER_ERROR]
        earlier: dict[int, int] = {}
        if errors:
            earlier = {i: n for i, n in s.execute(
                select(Attempt.delivery_id, func.count()).group_by(Attempt.delivery_id)
                .where(and_(Attempt.delivery_id.in_(errors), Attempt.result == PROVIDER_ERROR)))}
        out: list[str | None] = []
        finals: list[tuple[Delivery, datetime]] = []
        for f in done:
            d, res, claim_ = rows.get(f.claim.delivery_id), f.result, f.claim
            if d is None:
                out.append(None)
                continue
            s.add(Attempt(delivery_id=d.id, started_at=f.started, ended_at=f.ended, driver=driver,
                          provider_ref=res.provider_ref, result=res.result,
                          pages_sent=res.pages_sent, pages_total=d.pages_total,
                          first_page=claim_.first_page, csid=res.csid, duration=res.duration,
                          error_class=None if res.result == "delivered" else res.result,
                          error_code=res.error_code, error_text=res.error_text or res.detail))
            if d.lease_owner != owner or d.state != states.SENDING:
                out.append(None)  # our lease was reaped; whoever holds it now decides
                continue
            facts = states.DeliveryFacts(
                channel=claim_.channel, attempts=d.attempts, pages_sent=d.pages_sent,
                pages_total=d.pages_total, first_attempt_at=d.first_attempt_at or f.started,
                provider_errors=earlier.get(d.id, 0))
            step = states.after_call(facts, res, f.policy, f.ended)
            if d.cancel_requested and step.state not in states.FINAL:
                step = states.Step("cancelled", step.pages_sent)
            d.pages_sent = step.pages_sent
            if res.csid:
                d.csid = res.csid
            d.lease_owner, d.lease_expires_at = None, None
            d.state = step.state
            if step.next_attempt_at is not None:
                d.next_attempt_at = step.next_attempt_at
            if step.state in states.FINAL:
                finals.append((d, f.ended))
            out.append(step.state)
        finish_many(s, finals, on_final)
        return out


def finish(s: Session, d: Delivery, when: datetime, on_final: OnFinal) -> None:
    """A delivery is final: settle its credits, store the job outcome, queue its notice."""
    finish_many(s, [(d, when)], on_final)


def finish_many(s: Session, finals: Sequence[tuple[Delivery, datetime]],
                on_final: OnFinal) -> None:
    """`finish` for several deliveries; each `on_final` sees the job as it would after that
    delivery alone (the outcome is final only for the last one of its job)."""
    if not finals:
        return
    for d, when in finals:
        d.finished_at = when
    # Lock the job rows (in id order: no deadlock between batches): the last two deliveries
    # of a job may finish at once on two nodes, and each must see the other's final state
    # before deriving the outcome.
    job_ids = sorted({d.job_id for d, _ in finals})
    jobs = {j.id: j for j in s.scalars(
        select(Job).where(Job.id.in_(job_ids)).order_by(Job.id).with_for_update()
        .execution_options(populate_existing=True))}
    for d, _ in finals:
        settle_credits(s, jobs[d.job_id], d)
    s.flush()
    siblings: dict[int, list[tuple[int, str, int]]] = {j: [] for j in job_ids}
    for job_id, delivery_id, state, pages in s.execute(
            select(Delivery.job_id, Delivery.id, Delivery.state, Delivery.pages_sent)
            .where(Delivery.job_id.in_(job_ids))):
        siblings[job_id].append((delivery_id, state, pages))
    later = {d.id for d, _ in finals}  # finished in this batch, not yet announced
    for d, _ in finals:
        later.discard(d.id)
        set_outcome(jobs[d.job_id], [(states.SENDING if i in later else st, p)
                                     for i, st, p in siblings[d.job_id]])
        on_final(s, jobs[d.job_id], d)
        metrics.delivery_final(d.state)


def settle_credits(s: Session, job: Job, d: Delivery) -> None:
    """Charge what reached the recipient (pages delivered, or an answered call); give back
    the rest of what intake reserved."""
    if not d.credits_reserved:
        return
    used = d.pages_sent if job.channel == "fax" else (1 if d.state == "delivered" else 0)
    refund = max(d.credits_reserved - used, 0)
    if refund:
        s.execute(update(Account).where(Account.id == job.account_id, Account.credits.is_not(None))
                  .values(credits=Account.credits + refund))
    d.credits_reserved = d.credits_reserved - refund


def update_outcome(s: Session, job: Job) -> None:
    """Store the job's outcome, derived from its deliveries (never kept separately)."""
    rows = s.execute(select(Delivery.state, Delivery.pages_sent)
                     .where(Delivery.job_id == job.id)).all()
    set_outcome(job, [(st, p) for st, p in rows])


def set_outcome(job: Job, rows: list[tuple[str, int]]) -> None:
    """The job's outcome from its deliveries' (state, pages_sent)."""
    job.outcome = states.job_outcome(rows)
    if job.outcome != states.IN_PROGRESS:
        job.state = "cancelled" if all(st == "cancelled" for st, _ in rows) else "done"
        job.finished_at = utcnow()


@dataclass(frozen=True)
class CancelReport:
    cancelled: int  # deliveries cancelled at once
    requested: int  # calls in flight asked to stop
    untouched: int  # already final


def cancel_job(store: Store, job_id: int, on_final: OnFinal) -> CancelReport | None:
    """Cancel what has not gone out; ask the worker holding a call in flight to stop it."""
    now = utcnow()
    with store.tx() as s:
        job = s.get(Job, job_id)
        if job is None:
            return None
        cancelled = requested = untouched = 0
        for d in list(job.deliveries):
            if d.state in (states.SCHEDULED, states.QUEUED):
                d.state = "cancelled"
                finish(s, d, now, on_final)
                cancelled += 1
            elif d.state == states.SENDING:
                d.cancel_requested = True
                requested += 1
            else:
                untouched += 1
        return CancelReport(cancelled, requested, untouched)


class RetryRefused(Exception):
    """The retry cannot be made (e.g. not enough credit); the message says why."""


def retry_job(store: Store, job_id: int) -> int | None:
    """Put a job's failed and expired deliveries back in the queue; returns how many.

    Their earlier notices stay sent (and are unlinked, so each retried delivery gets one
    new notice); credits are reserved again.
    """
    now = utcnow()
    with store.tx() as s:
        job = s.get(Job, job_id)
        if job is None:
            return None
        again = [d for d in job.deliveries if d.state in ("failed", "expired")]
        if not again:
            return 0
        account = s.get(Account, job.account_id)
        assert account is not None
        each = (job.pages or 1) if job.channel == "fax" else 1
        if account.credits is not None:
            if store.is_postgres:
                s.refresh(account, with_for_update=True)
            need = each * len(again)
            if account.credits is None or account.credits < need:
                raise RetryRefused(f"{need} credits needed, {account.credits} left")
            account.credits -= need
        ids = [d.id for d in again]
        s.execute(update(OutboxMail).where(OutboxMail.delivery_id.in_(ids))
                  .values(delivery_id=None))
        for d in again:
            d.state, d.next_attempt_at = states.QUEUED, now
            d.first_attempt_at, d.finished_at, d.cancel_requested = None, None, False
            d.pages_sent = 0
            d.credits_reserved = each if account.credits is not None else 0
        job.state, job.outcome, job.finished_at = "active", states.IN_PROGRESS, None
        notify_queue(s)
        return len(again)
