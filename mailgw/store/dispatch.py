"""The dispatcher's SQL: claim with a lease, heartbeat, reap, release, and the documents a
claimed call needs.

Each function is one short transaction. On PostgreSQL the claim skips rows another node
holds (`FOR UPDATE SKIP LOCKED`) and serialises per destination number with a
transaction-scoped advisory lock; on SQLite, BEGIN IMMEDIATE serialises claimers. Where
the dialects differ, both statements are built side by side (`pg` True or False).
Recording a call's result is in store.record; a job's life (finish, cancel, retry) in
store.jobs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any, cast

from sqlalchemy import (
    CTE,
    Connection,
    Integer,
    Table,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mailgw.dispatch import states
from mailgw.dispatch.pacing import next_open, parse_window
from mailgw.store import Account, Attempt, Delivery, Job, Store, utcnow
from mailgw.store.models import UtcDateTime

NOTIFY_CHANNEL = "mailgw_queue"
# The tables, for Core statements (no identity map, no unit of work) on the hot paths.
_D, _J, _A, _AT = (cast(Table, m.__table__) for m in (Delivery, Job, Account, Attempt))


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


def notify_queue(s: Session | Connection) -> None:
    """PostgreSQL: wake the dispatchers on commit (a hint; they poll anyway)."""
    dialect = s.dialect if isinstance(s, Connection) else s.get_bind().dialect
    if dialect.name == "postgresql":
        s.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


def _free_numbers(conn: Any, pg: bool, numbers: list[str]) -> set[str]:
    """The numbers with no call in flight (checked under a per-number lock on PostgreSQL):
    one round trip for the locks, one for the check, whatever the batch."""
    free = set(numbers)
    q = _claim_sql()
    if pg and free:
        free = set(conn.scalars(q["locks"], {"ns": sorted(free)}))
    if free:
        free -= set(conn.scalars(q["busy", pg], {"ns": list(free)}))
    return free


def _due(state: str, now: Any, n: Any, pg: bool) -> CTE:
    """Due deliveries in one state, oldest first. One state at a time keeps the order of
    ix_delivery_due (state, next_attempt_at), so the claim never sorts the whole queue."""
    q = (select(_D.c.id, _D.c.next_attempt_at, _D.c.number, _D.c.job_id,
                _J.c.channel, _J.c.duration, _J.c.message_id, _J.c.state.label("job_state"),
                _J.c.created_at.label("job_created"), _A.c.send_window, _A.c.tz,
                _A.c.retry_policy)
         .join_from(_D, _J, _J.c.id == _D.c.job_id).join(_A, _A.c.id == _J.c.account_id)
         .where(_D.c.state == state, _D.c.next_attempt_at <= now)
         .order_by(_D.c.next_attempt_at, _D.c.id).limit(n))
    if pg:
        q = q.with_for_update(skip_locked=True, of=_D)
    return q.cte(f"due_{state}")


_CLAIM_SQL: dict[Any, Any] = {}


def _claim_sql() -> dict[Any, Any]:
    """The claim's statements on the tables (no ORM), built once: building them costs more
    Python than running them."""
    if _CLAIM_SQL:
        return _CLAIM_SQL
    q: dict[Any, Any] = {}  # built whole, then published: another thread never sees half
    for pg in (False, True):
        now, n = bindparam("now", type_=UtcDateTime()), bindparam("n", type_=Integer())
        due = [_due(st, now, n, pg) for st in (states.QUEUED, states.SCHEDULED)]
        both = union_all(select(due[0]), select(due[1])).subquery()
        q[pg] = select(both).order_by(both.c.next_attempt_at, both.c.id).limit(n)
    q["locks"] = text("SELECT n FROM unnest(CAST(:ns AS text[])) AS n"
                      " WHERE pg_try_advisory_xact_lock(hashtext(n))")
    for pg in (False, True):
        q["busy", pg] = select(_D.c.number).where(_D.c.state == states.SENDING,
                                                  in_param(_D.c.number, "ns", pg))
    q["push"] = (update(_D).where(_D.c.id == bindparam("b_id"))
                 .values(next_attempt_at=bindparam("b_at", type_=UtcDateTime())))
    claimed_at = bindparam("now", type_=UtcDateTime())
    for pg in (False, True):
        q["take", pg] = (update(_D).where(in_param(_D.c.id, "ids", pg))
                         .values(state=states.SENDING, lease_owner=bindparam("owner"),
                                 lease_expires_at=bindparam("expires", type_=UtcDateTime()),
                                 attempts=_D.c.attempts + 1,
                                 first_attempt_at=func.coalesce(_D.c.first_attempt_at,
                                                                claimed_at))
                         .returning(_D.c.id, _D.c.attempts, _D.c.pages_sent,
                                    _D.c.pages_total))
        q["activate", pg] = (update(_J).where(in_param(_J.c.id, "ids", pg),
                                              _J.c.state == "scheduled")
                             .values(state="active"))
    _CLAIM_SQL.update(q)
    return q


def claim(store: Store, owner: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Take up to `limit` due deliveries and mark them `sending` under our lease.

    Honours the account's sending window (a delivery outside it is pushed to the next
    opening) and places at most one call at a time to the same number. A few statements
    per transaction, whatever `limit` is: claiming a batch costs about what one costs.
    The candidates are read `limit` and a few at a time, and up to 4 × `limit` only when
    pushes and busy numbers left too few.
    """
    if limit <= 0:
        return []
    now = utcnow()
    pg = store.is_postgres
    q = _claim_sql()
    with store.tx() as s:
        conn = s.connection()
        chosen: list[Row[Any]] = []
        numbers: set[str] = set()
        seen: set[int] = set()
        for n in (limit + max(limit // 8, 2), limit * 4):
            rows = conn.execute(q[pg], {"now": now, "n": n}).all()
            candidates = []
            pushes = []
            for row in rows:
                if row.id in seen:
                    continue
                seen.add(row.id)
                if row.send_window:
                    try:
                        opening = next_open(parse_window(row.send_window), row.tz, now)
                    except ValueError:
                        opening = None  # a broken window never blocks sending
                    if opening is not None:
                        pushes.append({"b_id": row.id, "b_at": opening})
                        continue
                if row.number not in numbers:
                    numbers.add(row.number)
                    candidates.append(row)
            if pushes:
                conn.execute(q["push"], pushes)
            while candidates and len(chosen) < limit:
                take = candidates[:limit - len(chosen)]
                candidates = candidates[len(take):]
                free = _free_numbers(conn, pg, [r.number for r in take])
                chosen += [r for r in take if r.number in free]
            if len(chosen) >= limit or len(rows) < n:
                break  # enough, or nothing more is due
        if not chosen:
            return []
        held = {r.id: r for r in conn.execute(q["take", pg], {
            "ids": [r.id for r in chosen], "owner": owner, "now": now,
            "expires": now + timedelta(seconds=lease_seconds)})}
        scheduled = {r.job_id for r in chosen if r.job_state == "scheduled"}
        if scheduled:
            conn.execute(q["activate", pg], {"ids": sorted(scheduled)})
        return [Claim(r.id, r.job_id, r.channel, r.number, held[r.id].attempts,
                      held[r.id].pages_total, held[r.id].pages_sent + 1, r.duration,
                      r.message_id, r.retry_policy, r.job_created)
                for r in chosen if r.id in held]


def load_document(store: Store, job_id: int) -> tuple[bytes | None, dict[str, str]]:
    """A fax job's document and options (its quality, mailgw.documents.quality)."""
    return load_documents(store, [job_id]).get(job_id, (None, {}))


def load_documents(store: Store, job_ids: Sequence[int]
                   ) -> dict[int, tuple[bytes | None, dict[str, str]]]:
    """The documents and options of several fax jobs, in one query (they never change)."""
    if not job_ids:
        return {}
    with store.read() as s:
        rows = s.execute(select(_J.c.id, _J.c.document, _J.c.options)
                         .where(_J.c.id.in_(list(job_ids))))
        return {i: (doc, _options(options)) for i, doc, options in rows}


def _options(text: str | None) -> dict[str, str]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def heartbeat(store: Store, owner: str, ids: list[int], lease_seconds: float
              ) -> tuple[int, list[int]]:
    """Extend our leases; returns how many we still hold and which were asked to cancel."""
    if not ids:
        return 0, []
    with store.tx() as s:
        # Rows locked by another transaction (our own record making them final, a reaper)
        # are skipped, not waited for: a heartbeat never waits behind a record or deadlocks
        # with one (PostgreSQL; SQLite has one writer at a time anyway).
        mine = (select(_D.c.id).where(_D.c.id.in_(ids), _D.c.lease_owner == owner,
                                      _D.c.state == states.SENDING)
                .order_by(_D.c.id).with_for_update(skip_locked=True))
        result = s.connection().execute(
            update(_D).where(_D.c.id.in_(mine.scalar_subquery()))
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
        # Locked rows are skipped (a worker recording them right now still holds them), in
        # id order: the reaper never deadlocks with a record or a heartbeat.
        expired = (select(_D.c.id).where(_D.c.state == states.SENDING,
                                         or_(_D.c.lease_expires_at.is_(None),
                                             _D.c.lease_expires_at < now))
                   .order_by(_D.c.id).with_for_update(skip_locked=True))
        result = s.connection().execute(
            update(_D).where(_D.c.id.in_(expired.scalar_subquery()))
            .values(state=states.QUEUED, lease_owner=None, lease_expires_at=None,
                    next_attempt_at=now, attempts=_D.c.attempts - 1))
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



def in_param(col: Any, name: str, pg: bool) -> Any:
    """`col IN (:name…)`; on PostgreSQL `col = ANY(:name)`, one array parameter (an IN list
    is rendered anew for each length, with a cast per element)."""
    if pg:
        return col == any_(bindparam(name, type_=ARRAY(col.type)))
    return col.in_(bindparam(name, expanding=True))


def cover_facts(s: Session, delivery_id: int) -> Any:
    """One delivery's number, list columns, job and account: what its cover page shows."""
    return s.execute(
        select(Delivery.number, Delivery.columns, Delivery.pages_total, Job.ref,
               Job.comment, Job.sender, Job.pages, Account.email, Account.lang, Account.tz)
        .join(Job, Job.id == Delivery.job_id).join(Account, Account.id == Job.account_id)
        .where(Delivery.id == delivery_id)).one()
