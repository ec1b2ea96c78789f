"""Every statement intake runs to write a mail: the job and its deliveries, the credit
debit, the cancel, the library message, the idempotency row, and the acks' outbox rows.

Kept together so the jobs service (mailgw.jobs) and mailgw.store can take them over in one
move. Nothing here decides anything: the writer (mailgw.intake.writer) reads values with
these functions, asks the pure ones (mailgw.intake.settle), then writes with these.
Core, not ORM objects, on the hot path: this runs for every mail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from mailgw.accounts import voice
from mailgw.dispatch import queries
from mailgw.intake.model import Decision, IntakeResult
from mailgw.intake.verdict import Scheduled
from mailgw.notify.outbox import enqueue_many
from mailgw.notify.render import Rendered
from mailgw.recipients import ListEntry
from mailgw.store import Account, Delivery, Job, ProcessedMessage, Store, utcnow
from mailgw.subject_parser import Command, masked_subject

# The committer's statements, built once (it runs them for every batch).
_ACCOUNT, _JOB, _DELIVERY, _PROCESSED = (cast(Table, m.__table__) for m in (
    Account, Job, Delivery, ProcessedMessage))
_INSERT_JOBS = insert(_JOB).returning(_JOB.c.id, sort_by_parameter_order=True)
_INSERT_DELIVERIES = insert(_DELIVERY)
_INSERT_PROCESSED = insert(_PROCESSED)
_CREDITS = select(_ACCOUNT.c.credits).where(_ACCOUNT.c.id == bindparam("account"))
_CREDITS_LOCKED = _CREDITS.with_for_update()
_DEBIT = (update(_ACCOUNT).where(_ACCOUNT.c.id == bindparam("account"))
          .values(credits=_ACCOUNT.c.credits - bindparam("cost")))

Row = dict[str, object]


@contextmanager
def transaction(store: Store, orm: bool) -> Iterator[tuple[Connection, Session | None]]:
    """The batch's transaction: a Core connection, and an ORM session only for the rare
    batch that cancels jobs or stores a voice message (code shared with the CLI)."""
    if orm:
        with store.tx() as s:
            yield s.connection(), s
    else:
        with store.engine.begin() as conn:
            yield conn, None


# -- jobs and deliveries --------------------------------------------------------------------

def job_row(d: Decision, account: Account, cmd: Command, now: datetime) -> Row:
    """A new job's columns; the batch inserts them all at once (`insert_jobs`)."""
    send_at = cmd.when_utc
    return {
        "account_id": account.id, "channel": d.channel, "sender": d.sender or account.email,
        "message_id": d.mail.message_id[:998] if d.mail.message_id else None,
        "state": "scheduled" if send_at else "active", "outcome": "in_progress",
        "subject": masked_subject(d.mail.subject), "ref": cmd.ref, "comment": cmd.comment,
        "send_at": send_at, "pages": d.pages, "duration": d.duration,
        "document": d.document, "document_name": d.document_name,
        "document_type": d.document_type,
        "options": json.dumps(d.options, sort_keys=True) if d.options else None,
        "numbers_from_list": d.from_list,
        "recipient_count": len(d.recipients),
        "created_at": now, "finished_at": None}


def delivery_rows(recipients: Sequence[ListEntry], send_at: datetime | None, now: datetime,
                  *, pages_total: int | None, reserved: int) -> list[Row]:
    """Its deliveries' columns (`job_id` filled in by `insert_jobs`)."""
    return [{
        "job_id": None, "number": entry.number,
        "state": "scheduled" if send_at else "queued",
        "next_attempt_at": send_at or now, "attempts": 0, "pages_sent": 0,
        "pages_total": pages_total, "credits_reserved": reserved,
        "cancel_requested": False,
        "columns": json.dumps(dict(entry.columns), ensure_ascii=False)
        if entry.columns else None} for entry in recipients]


def insert_jobs(conn: Connection, jobs: list[tuple[Row, list[Row]]]) -> list[int]:
    """The batch's new jobs in one INSERT (their ids back, in order), then all their
    deliveries in another; the dispatcher is told."""
    if not jobs:
        return []
    ids = list(conn.execute(_INSERT_JOBS, [job for job, _ in jobs]).scalars().all())
    deliveries = []
    for (_, rows), job_id in zip(jobs, ids, strict=True):
        for row in rows:
            row["job_id"] = job_id
            deliveries.append(row)
    if deliveries:
        conn.execute(_INSERT_DELIVERIES, deliveries)
    queries.notify_queue(conn)
    return ids


# -- credits ---------------------------------------------------------------------------------

def read_credits(conn: Connection, account_id: int, *, lock: bool) -> int | None:
    """The account's balance (None: no limit), locked on PostgreSQL (SQLite's BEGIN
    IMMEDIATE already serialises writers)."""
    read = _CREDITS_LOCKED if lock else _CREDITS
    return cast(int | None, conn.execute(read, {"account": account_id}).scalar())


def debit(conn: Connection, account_id: int, cost: int) -> None:
    """Relative (credits - cost), like the dispatcher's refunds."""
    conn.execute(_DEBIT, {"account": account_id, "cost": cost})


# -- cancels and the voice library -----------------------------------------------------------

def scheduled_jobs(s: Session, account_id: int, when: datetime) -> list[Job]:
    """The account's scheduled jobs at `when`: what a cancel for that time may match."""
    return list(s.scalars(select(Job).where(Job.account_id == account_id,
                                            Job.state == "scheduled", Job.send_at == when)))


def as_scheduled(job: Job) -> Scheduled:
    return Scheduled(job.id, job.ref, frozenset(d.number for d in job.deliveries))


def cancel(s: Session, jobs: Sequence[Job], on_final: queries.OnFinal) -> None:
    """Cancel these jobs' scheduled deliveries: their credits come back and each cancelled
    number gets its notice."""
    for job in jobs:
        for dl in job.deliveries:
            if dl.state == "scheduled":
                dl.state = "cancelled"
                queries.finish(s, dl, utcnow(), on_final)


def store_message(s: Session, account_id: int, ref: str, audio: bytes, duration: float,
                  name: str | None) -> bool:
    """Message `ref` into the account's voice library; True when it replaced one."""
    return voice.store_message(s, account_id, ref, audio, duration, name)


# -- answers ---------------------------------------------------------------------------------

def record(conn: Connection, processed: list[Row], acks: list[tuple[Rendered, int | None]],
           return_path: str) -> None:
    """The idempotency rows (the answer a repeat gets) and the acks, in the outbox."""
    if processed:
        conn.execute(_INSERT_PROCESSED, processed)
    enqueue_many(conn, acks, return_path=return_path)


def earlier_answer(read: Callable[[], AbstractContextManager[Session]], account_id: int,
                   key: str) -> IntakeResult | None:
    """The answer given the first time, for the same mail received again."""
    with read() as s:
        row = s.scalar(select(ProcessedMessage).where(
            ProcessedMessage.account_id == account_id, ProcessedMessage.message_id == key))
        if row is None:
            return None
        ids = tuple(int(i) for i in row.job_ids.split(",") if i)
        return IntakeResult(row.code, row.reply, proven=True, job_ids=ids, duplicate=True)
