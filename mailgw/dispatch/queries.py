"""The dispatcher's SQL: claim with a lease, heartbeat, reap, record, cancel, retry.

Each function is one short transaction. On PostgreSQL the claim skips rows another node
holds (`FOR UPDATE SKIP LOCKED`) and serialises per destination number with a
transaction-scoped advisory lock; on SQLite, BEGIN IMMEDIATE serialises claimers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any, cast

from sqlalchemy import (
    CTE,
    Connection,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session, contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from mailgw.dispatch import states
from mailgw.dispatch.drivers.base import PROVIDER_ERROR, CallResult
from mailgw.dispatch.pacing import next_open, parse_window
from mailgw.ops import metrics
from mailgw.ops.config import RetrySettings
from mailgw.store import Account, Attempt, Delivery, Job, OutboxMail, Store, utcnow
from mailgw.store.models import UtcDateTime

OnFinal = Callable[[Session, Job, Delivery], None]
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
                                                  _in(_D.c.number, "ns", pg))
    q["push"] = (update(_D).where(_D.c.id == bindparam("b_id"))
                 .values(next_attempt_at=bindparam("b_at", type_=UtcDateTime())))
    claimed_at = bindparam("now", type_=UtcDateTime())
    for pg in (False, True):
        q["take", pg] = (update(_D).where(_in(_D.c.id, "ids", pg))
                         .values(state=states.SENDING, lease_owner=bindparam("owner"),
                                 lease_expires_at=bindparam("expires", type_=UtcDateTime()),
                                 attempts=_D.c.attempts + 1,
                                 first_attempt_at=func.coalesce(_D.c.first_attempt_at,
                                                                claimed_at))
                         .returning(_D.c.id, _D.c.attempts, _D.c.pages_sent,
                                    _D.c.pages_total))
        q["activate", pg] = (update(_J).where(_in(_J.c.id, "ids", pg),
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


_FINAL_SQL = tuple(sorted(states.FINAL))
_RECORD_SQL: dict[bool, dict[str, Any]] = {}


def _in(col: Any, name: str, pg: bool) -> Any:
    """`col IN (:name…)`; on PostgreSQL `col = ANY(:name)`, one array parameter (an IN list
    is rendered anew for each length, with a cast per element)."""
    if pg:
        return col == any_(bindparam(name, type_=ARRAY(col.type)))
    return col.in_(bindparam(name, expanding=True))


def _record_sql(pg: bool) -> dict[str, Any]:
    """record_many's Core statements (tables, not ORM entities: no identity map, no unit of
    work), built once per dialect."""
    cached = _RECORD_SQL.get(pg)
    if cached is not None:
        return cached
    q: dict[str, Any] = {}  # built whole, then published: another thread never sees half
    q["read"] = (select(_D.c.id, _D.c.job_id, _D.c.state, _D.c.lease_owner, _D.c.attempts,
                        _D.c.pages_sent, _D.c.pages_total, _D.c.first_attempt_at,
                        _D.c.cancel_requested, _D.c.credits_reserved, _J.c.channel,
                        _J.c.account_id)
                 .join_from(_D, _J, _J.c.id == _D.c.job_id).where(_in(_D.c.id, "ids", pg))
                 .order_by(_D.c.id))
    if pg:  # our rows, locked in id order (as every multi-row writer of deliveries does):
        # nobody moves them between this read and our write
        q["read"] = q["read"].with_for_update(of=_D)
    q["errors"] = (select(_AT.c.delivery_id, func.count()).group_by(_AT.c.delivery_id)
                   .where(_in(_AT.c.delivery_id, "ids", pg), _AT.c.result == PROVIDER_ERROR))
    if pg:  # one statement for every attempt row, not one per row
        q["attempt"] = text(
            "INSERT INTO attempt (delivery_id, started_at, ended_at, driver, provider_ref,"
            " result, pages_sent, pages_total, first_page, csid, duration, error_class,"
            " error_code, error_text) SELECT d, s, e, :driver, p, r, n, t, f, c, u, k, o, x"
            " FROM unnest(CAST(:d AS bigint[]), CAST(:s AS timestamptz[]),"
            " CAST(:e AS timestamptz[]), CAST(:p AS text[]), CAST(:r AS text[]),"
            " CAST(:n AS int[]), CAST(:t AS int[]), CAST(:f AS int[]), CAST(:c AS text[]),"
            " CAST(:u AS float8[]), CAST(:k AS text[]), CAST(:o AS text[]),"
            " CAST(:x AS text[])) AS v(d, s, e, p, r, n, t, f, c, u, k, o, x)")
        # One statement for the batch, still ours only if the lease is (a reaper on another
        # node may have taken a row since we read it); RETURNING says which moved.
        q["move"] = text(
            "UPDATE delivery AS d SET state = v.state, pages_sent = v.pages,"
            " csid = coalesce(v.csid, d.csid), lease_owner = NULL, lease_expires_at = NULL,"
            " next_attempt_at = coalesce(v.next, d.next_attempt_at),"
            " finished_at = coalesce(v.fin, d.finished_at), credits_reserved = v.credits"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:states AS text[]),"
            " CAST(:pages AS int[]), CAST(:csids AS text[]), CAST(:nexts AS timestamptz[]),"
            " CAST(:fins AS timestamptz[]), CAST(:credits AS int[]))"
            " AS v(id, state, pages, csid, next, fin, credits)"
            " WHERE d.id = v.id AND d.id = ANY(CAST(:ids AS bigint[]))"
            " AND d.lease_owner = :owner AND d.state = 'sending'"
            " RETURNING d.id")
    else:
        q["attempt"] = insert(_AT)
        # BEGIN IMMEDIATE: nobody changed the rows since we read them. One executemany.
        q["move"] = (update(_D).where(_D.c.id == bindparam("b_id"))
                     .values(state=bindparam("b_state"), pages_sent=bindparam("b_pages"),
                             csid=func.coalesce(bindparam("b_csid", type_=String()),
                                                _D.c.csid),
                             lease_owner=None, lease_expires_at=None,
                             next_attempt_at=func.coalesce(
                                 bindparam("b_next", type_=UtcDateTime()),
                                 _D.c.next_attempt_at),
                             finished_at=func.coalesce(
                                 bindparam("b_fin", type_=UtcDateTime()), _D.c.finished_at),
                             credits_reserved=bindparam("b_credits")))
    q["refund"] = (update(_A).where(_A.c.id == bindparam("b_account"),
                                    _A.c.credits.is_not(None))
                   .values(credits=_A.c.credits + bindparam("b_refund")))
    q["jobs"] = (select(_J.c.id, _J.c.state, _J.c.outcome, _J.c.finished_at)
                 .where(_in(_J.c.id, "ids", pg)).order_by(_J.c.id))
    if pg:
        q["jobs"] = q["jobs"].with_for_update()

    def count(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    q["counts"] = (select(_D.c.job_id, func.count(), count(_D.c.state.not_in(_FINAL_SQL)),
                          count(_D.c.state == "delivered"),
                          count(or_(_D.c.state.in_(("delivered", "partial")),
                                    _D.c.pages_sent > 0)),
                          count(_D.c.state == "cancelled"))
                   .where(_in(_D.c.job_id, "ids", pg)).group_by(_D.c.job_id))
    q["outcome"] = (update(_J).where(_in(_J.c.id, "ids", pg))
                    .values(outcome=bindparam("outcome"), state=bindparam("state")))
    q["done"] = q["outcome"].values(finished_at=bindparam("finished", type_=UtcDateTime()))
    q["finals"] = (select(Delivery).join(Delivery.job).options(contains_eager(Delivery.job))
                   .where(_in(Delivery.id, "ids", pg)))
    _RECORD_SQL[pg] = q
    return q


_ATTEMPT_ARRAYS = (("d", "delivery_id"), ("s", "started_at"), ("e", "ended_at"),
                   ("p", "provider_ref"), ("r", "result"), ("n", "pages_sent"),
                   ("t", "pages_total"), ("f", "first_page"), ("c", "csid"), ("u", "duration"),
                   ("k", "error_class"), ("o", "error_code"), ("x", "error_text"))


@dataclass
class _Final:
    """A delivery this batch made final, and what its job needs to know."""

    delivery_id: int
    job_id: int
    state: str


def record_many(store: Store, owner: str, done: Sequence[Finished], driver: str,
                on_final: OnFinal) -> list[str | None]:
    """`record` for several ended calls in one transaction; the new state of each, in order
    (None where the lease was lost).

    Set-based: one read of the deliveries, one INSERT for every attempt row, one UPDATE
    statement for every delivery, and for the deliveries that became final one lock of
    their jobs, one refund per account, one aggregate of the jobs' deliveries and one
    UPDATE per distinct outcome. Only the finals are loaded as ORM objects, for `on_final`.
    """
    if not done:
        return []
    pg = store.is_postgres
    q = _record_sql(pg)
    with store.tx() as s:
        conn = s.connection()
        ids = [f.claim.delivery_id for f in done]
        rows = {r.id: r for r in conn.execute(q["read"], {"ids": ids})}
        # Earlier provider errors set the back-off of a new one (read before this batch's
        # attempts are added).
        errors = [f.claim.delivery_id for f in done if f.result.result == PROVIDER_ERROR]
        earlier: dict[int, int] = {}
        if errors:
            earlier = {i: n for i, n in conn.execute(q["errors"], {"ids": errors})}
        attempts: list[dict[str, Any]] = []
        moves: list[dict[str, Any]] = []
        out: list[str | None] = []
        finals: list[_Final] = []
        refunds: dict[int, int] = {}
        for f in done:
            d, res, claim_ = rows.get(f.claim.delivery_id), f.result, f.claim
            if d is None:
                out.append(None)
                continue
            attempts.append({
                "delivery_id": d.id, "started_at": f.started, "ended_at": f.ended,
                "driver": driver, "provider_ref": res.provider_ref, "result": res.result,
                "pages_sent": res.pages_sent, "pages_total": d.pages_total,
                "first_page": claim_.first_page, "csid": res.csid, "duration": res.duration,
                "error_class": None if res.result == "delivered" else res.result,
                "error_code": res.error_code, "error_text": res.error_text or res.detail})
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
            final = step.state in states.FINAL
            credits = d.credits_reserved
            if final and credits:  # charge what reached the recipient, give back the rest
                used = step.pages_sent if d.channel == "fax" else (
                    1 if step.state == "delivered" else 0)
                refund = max(credits - used, 0)
                if refund:
                    refunds[d.account_id] = refunds.get(d.account_id, 0) + refund
                    credits -= refund
            moves.append({"b_id": d.id, "b_state": step.state, "b_pages": step.pages_sent,
                          "b_csid": res.csid or None, "b_next": step.next_attempt_at,
                          "b_fin": f.ended if final else None, "b_credits": credits})
            if final:
                finals.append(_Final(d.id, d.job_id, step.state))
            out.append(step.state)
        if pg:
            conn.execute(q["attempt"], {"driver": driver, **{
                k: [a[col] for a in attempts] for k, col in _ATTEMPT_ARRAYS}})
        else:
            conn.execute(q["attempt"], attempts)
        if moves and pg:
            moved = set(conn.scalars(q["move"], {
                "owner": owner, "ids": [m["b_id"] for m in moves],
                "states": [m["b_state"] for m in moves], "pages": [m["b_pages"] for m in moves],
                "csids": [m["b_csid"] for m in moves], "nexts": [m["b_next"] for m in moves],
                "fins": [m["b_fin"] for m in moves],
                "credits": [m["b_credits"] for m in moves]}))
            if len(moved) < len(moves):  # a guard: the read's row locks keep them ours
                lost = {m["b_id"] for m in moves} - moved
                out = [None if f.claim.delivery_id in lost else st
                       for f, st in zip(done, out, strict=True)]
                finals = [x for x in finals if x.delivery_id not in lost]
                refunds = _refunds_without(rows, moves, lost, refunds)
        elif moves:
            conn.execute(q["move"], moves)
        _finish_finals(s, conn, pg, finals, refunds, on_final)
        return out


def _refunds_without(rows: dict[int, Any], moves: list[dict[str, Any]], lost: set[int],
                     refunds: dict[int, int]) -> dict[int, int]:
    """The refunds minus those of deliveries we did not move after all."""
    left = dict(refunds)
    for m in moves:
        if m["b_id"] in lost:
            d = rows[m["b_id"]]
            given = d.credits_reserved - m["b_credits"]
            if given:
                left[d.account_id] -= given
    return {a: r for a, r in left.items() if r}


def _finish_finals(s: Session, conn: Any, pg: bool, finals: list[_Final],
                   refunds: dict[int, int], on_final: OnFinal) -> None:
    """The deliveries `record_many` made final (already written): lock their jobs, give
    credits back, store the jobs' outcomes, then `on_final` for each, in order, with ORM
    objects; each sees its job as it would after that delivery alone."""
    if not finals:
        return
    q = _record_sql(pg)
    job_ids = sorted({x.job_id for x in finals})
    # Lock the job rows (in id order: no deadlock between batches): the last two deliveries
    # of a job may finish at once on two nodes, and each must see the other's final state
    # before deriving the outcome (the counts below run after the lock is granted).
    old = {r.id: r for r in conn.execute(q["jobs"], {"ids": job_ids})}
    if refunds:
        conn.execute(q["refund"], [{"b_account": a, "b_refund": r}
                                   for a, r in sorted(refunds.items())])
    now = utcnow()
    new: dict[int, tuple[str, str, datetime | None]] = {}
    for job_id, total, unfinished, delivered, reached, cancelled in conn.execute(
            q["counts"], {"ids": job_ids}):
        outcome = states.outcome_from_counts(total, unfinished, delivered, reached)
        o = old[job_id]
        if outcome == states.IN_PROGRESS:
            new[job_id] = (outcome, o.state, o.finished_at)
        else:
            new[job_id] = (outcome, "cancelled" if cancelled == total else "done", now)
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for job_id, (outcome, state, finished) in new.items():
        o = old[job_id]
        if (outcome, state, finished) != (o.outcome, o.state, o.finished_at):
            groups.setdefault((outcome, state, finished is now), []).append(job_id)
    for (outcome, state, stamped), jids in groups.items():
        conn.execute(q["done" if stamped else "outcome"], {
            "ids": jids, "outcome": outcome, "state": state, "finished": now})
    objs = {d.id: d for d in s.scalars(q["finals"], {"ids": [x.delivery_id for x in finals]})}
    last = {x.job_id: x.delivery_id for x in finals}  # the one that sees the job's outcome
    shown: set[int] = set()  # jobs whose ORM view was set back to "in progress"
    for x in finals:
        d = objs[x.delivery_id]
        job = d.job
        # The view on_final reads (the store already holds the job's final values): a
        # delivery followed by another of its job in this batch sees the job in progress.
        view = None
        if last[x.job_id] != x.delivery_id:
            o = old[x.job_id]
            view = (states.IN_PROGRESS, o.state, o.finished_at)
            shown.add(x.job_id)
        elif x.job_id in shown:
            view = new[x.job_id]
        if view is not None:
            for key, value in zip(("outcome", "state", "finished_at"), view, strict=True):
                set_committed_value(job, key, value)
        on_final(s, job, d)
        metrics.delivery_final(x.state)


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
