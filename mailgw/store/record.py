"""Recording ended calls: the attempt rows, the deliveries' next states, the credits given
back and the outcomes of the jobs they finish, in one transaction for a batch.

The per-dialect statements sit side by side in `_record_sql`: PostgreSQL gets one
`unnest` INSERT and one UPDATE … FROM for the whole batch, SQLite an executemany under
BEGIN IMMEDIATE. The caller's `on_final` (the jobs service: the notice) runs in the same
transaction for each delivery made final (the outbox rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, case, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from mailgw.dispatch import states
from mailgw.dispatch.drivers.base import PROVIDER_ERROR, CallResult
from mailgw.ops.config import RetrySettings
from mailgw.store import Account, Attempt, Delivery, Job, Store, utcnow
from mailgw.store.dispatch import Claim, in_param
from mailgw.store.jobs import OnFinal
from mailgw.store.models import UtcDateTime

_D, _J, _A, _AT = (cast(Table, m.__table__) for m in (Delivery, Job, Account, Attempt))


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
                 .join_from(_D, _J, _J.c.id == _D.c.job_id).where(in_param(_D.c.id, "ids", pg))
                 .order_by(_D.c.id))
    if pg:  # our rows, locked in id order (as every multi-row writer of deliveries does):
        # nobody moves them between this read and our write
        q["read"] = q["read"].with_for_update(of=_D)
    q["errors"] = (select(_AT.c.delivery_id, func.count()).group_by(_AT.c.delivery_id)
                   .where(in_param(_AT.c.delivery_id, "ids", pg), _AT.c.result == PROVIDER_ERROR))
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
                 .where(in_param(_J.c.id, "ids", pg)).order_by(_J.c.id))
    if pg:
        q["jobs"] = q["jobs"].with_for_update()

    def count(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    q["counts"] = (select(_D.c.job_id, func.count(), count(_D.c.state.not_in(_FINAL_SQL)),
                          count(_D.c.state == "delivered"),
                          count(or_(_D.c.state.in_(("delivered", "partial")),
                                    _D.c.pages_sent > 0)),
                          count(_D.c.state == "cancelled"))
                   .where(in_param(_D.c.job_id, "ids", pg)).group_by(_D.c.job_id))
    q["outcome"] = (update(_J).where(in_param(_J.c.id, "ids", pg))
                    .values(outcome=bindparam("outcome"), state=bindparam("state")))
    q["done"] = q["outcome"].values(finished_at=bindparam("finished", type_=UtcDateTime()))
    q["finals"] = (select(Delivery).join(Delivery.job).options(contains_eager(Delivery.job))
                   .where(in_param(Delivery.id, "ids", pg)))
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
                refund = states.credits_refund(credits, d.channel, step.state, step.pages_sent)
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
