"""A job's life in SQL: creating jobs (intake's batch INSERTs, the credit debit), finishing
deliveries (credits settled, the job's outcome stored), cancelling and retrying a job.

The functions take the caller's connection or session (creating and finishing happen inside
intake's and the dispatcher's transactions) or open one short transaction. `on_final` is the
jobs service's hook (mailgw.jobs.service): it writes the notice in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from mailgw.dispatch import states
from mailgw.store import Account, Delivery, Job, OutboxMail, Store, utcnow
from mailgw.store.dispatch import notify_queue

OnFinal = Callable[[Session, Job, Delivery], None]
Row = dict[str, object]  # a new row's columns

# Intake's statements, built once (they run for every batch of mails).
_ACCOUNT, _JOB, _DELIVERY = (cast(Table, m.__table__) for m in (Account, Job, Delivery))
_INSERT_JOBS = insert(_JOB).returning(_JOB.c.id, sort_by_parameter_order=True)
INSERT_BATCH = 5000  # rows per executemany: bounds the converted parameters held at once
_UNSET = object()
_CREDITS = select(_ACCOUNT.c.credits).where(_ACCOUNT.c.id == bindparam("account"))
_CREDITS_LOCKED = _CREDITS.with_for_update()
_DEBIT = (update(_ACCOUNT).where(_ACCOUNT.c.id == bindparam("account"))
          .values(credits=_ACCOUNT.c.credits - bindparam("cost")))


# -- create ----------------------------------------------------------------------------------

def insert_jobs(conn: Connection, jobs: list[tuple[Row, list[Row]]]) -> list[int]:
    """New jobs in one INSERT (their ids back, in order), then all their deliveries in
    another (each delivery's `job_id` filled in); the dispatchers are told."""
    if not jobs:
        return []
    ids = list(conn.execute(_INSERT_JOBS, [job for job, _ in jobs]).scalars().all())
    for (_, rows), job_id in zip(jobs, ids, strict=True):
        for row in rows:
            row["job_id"] = job_id
    insert_many(conn, _DELIVERY, [row for _, rows in jobs for row in rows])
    notify_queue(conn)
    return ids


def insert_many(conn: Connection, table: Table, rows: Sequence[Row], *,
                batch: int = INSERT_BATCH) -> None:
    """Rows with the same keys, in batches of `batch`: PostgreSQL's COPY, SQLite's
    executemany, both inside the caller's transaction.

    Why not `conn.execute(insert(table), rows)`: SQLAlchemy builds and converts every
    parameter of every row in Python; that was two thirds of a 100,000-number campaign's
    commit on SQLite, and PostgreSQL takes COPY three times faster than multi-row INSERTs.
    Each column's bind processor (UtcDateTime's, for one) runs once per distinct value
    object: a job's deliveries share their times and states.
    """
    if not rows:
        return
    keys = list(rows[0])
    compiled = insert(table).inline().compile(dialect=conn.dialect, column_keys=keys)
    names = list(compiled.positiontup or ()) if compiled.positional else keys
    convert = _converter(conn, table, names)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        columns = ", ".join(conn.dialect.identifier_preparer.quote(k) for k in names)
        with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(convert(row))
        return
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        params: list[Any] = [convert(row) for row in chunk] if compiled.positional else \
            [dict(zip(names, convert(row), strict=True)) for row in chunk]
        conn.exec_driver_sql(compiled.string, params)


def _converter(conn: Connection, table: Table, names: list[str]
               ) -> Callable[[Row], tuple[object, ...]]:
    """A row's values in `names` order, as the driver takes them (the columns' bind
    processors applied, once per distinct value object)."""
    processors = [table.c[k].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
                  for k in names]
    last: list[tuple[object, object]] = [(_UNSET, None)] * len(names)

    def value(i: int, raw: object) -> object:
        process = processors[i]
        if process is None:
            return raw
        seen, done = last[i]
        if raw is not seen:
            done = process(raw)
            last[i] = (raw, done)
        return done

    return lambda row: tuple(value(i, row[k]) for i, k in enumerate(names))


def read_credits(conn: Connection, account_id: int, *, lock: bool) -> int | None:
    """The account's balance (None: no limit), locked on PostgreSQL (SQLite's BEGIN
    IMMEDIATE already serialises writers)."""
    read = _CREDITS_LOCKED if lock else _CREDITS
    return cast(int | None, conn.execute(read, {"account": account_id}).scalar())


def debit(conn: Connection, account_id: int, cost: int) -> None:
    """Relative (credits - cost), like the refunds: never a lost update."""
    conn.execute(_DEBIT, {"account": account_id, "cost": cost})


def scheduled_jobs(s: Session, account_id: int, when: datetime) -> list[Job]:
    """The account's scheduled jobs at `when`: what a cancel for that time may match."""
    return list(s.scalars(select(Job).where(Job.account_id == account_id,
                                            Job.state == "scheduled", Job.send_at == when)))


# -- finish ----------------------------------------------------------------------------------


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


def settle_credits(s: Session, job: Job, d: Delivery) -> None:
    """Charge what reached the recipient (pages delivered, or an answered call); give back
    the rest of what intake reserved."""
    if not d.credits_reserved:
        return
    refund = states.credits_refund(d.credits_reserved, job.channel, d.state, d.pages_sent)
    if refund:
        s.execute(update(Account).where(Account.id == job.account_id, Account.credits.is_not(None))
                  .values(credits=Account.credits + refund))
    d.credits_reserved = d.credits_reserved - refund


def set_outcome(job: Job, rows: list[tuple[str, int]]) -> None:
    """The job's outcome from its deliveries' (state, pages_sent)."""
    job.outcome = states.job_outcome(rows)
    if job.outcome != states.IN_PROGRESS:
        job.state = states.job_state(job.outcome, (st for st, _ in rows), job.state)
        job.finished_at = utcnow()


# -- cancel, retry ---------------------------------------------------------------------------

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
            action = states.cancel_action(d.state)
            if action == states.CANCEL_NOW:
                d.state = "cancelled"
                finish(s, d, now, on_final)
                cancelled += 1
            elif action == states.STOP_CALL:
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
        again = [d for d in job.deliveries if d.state in states.RETRYABLE]
        if not again:
            return 0
        account = s.get(Account, job.account_id)
        assert account is not None
        each = states.credits_each(job.channel, job.pages)
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
