"""What intake writes of a mail besides the job: the transaction, the new job's columns,
the library message, the idempotency row and the acks' outbox rows. The job itself (its
rows, the credit debit, the cancel) goes through the jobs service (mailgw.jobs.service),
whose SQL is in mailgw.store.jobs.

Its own two statements are in mailgw.store.processed. Nothing here decides anything:
the writer (mailgw.intake.writer) reads values, asks the pure ones (mailgw.intake.settle),
then writes. Core, not ORM objects, on the hot path: this runs for every mail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mailgw.accounts import voice
from mailgw.intake.model import Decision, IntakeResult
from mailgw.intake.verdict import Scheduled
from mailgw.notify.outbox import enqueue_many
from mailgw.notify.render import Rendered
from mailgw.recipients import ListEntry
from mailgw.store import Account, Job, Store
from mailgw.store import processed as processed_rows
from mailgw.store.jobs import Row
from mailgw.subject_parser import Command, masked_subject


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
    """A new job's columns; the batch inserts them all at once (`Jobs.create`)."""
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
    """Its deliveries' columns (`job_id` filled in by `Jobs.create`)."""
    return [{
        "job_id": None, "number": entry.number,
        "state": "scheduled" if send_at else "queued",
        "next_attempt_at": send_at or now, "attempts": 0, "pages_sent": 0,
        "pages_total": pages_total, "credits_reserved": reserved,
        "cancel_requested": False,
        "columns": json.dumps(dict(entry.columns), ensure_ascii=False)
        if entry.columns else None} for entry in recipients]


def as_scheduled(job: Job) -> Scheduled:
    return Scheduled(job.id, job.ref, frozenset(d.number for d in job.deliveries))


def store_message(s: Session, account_id: int, ref: str, audio: bytes, duration: float,
                  name: str | None) -> bool:
    """Message `ref` into the account's voice library; True when it replaced one."""
    return voice.store_message(s, account_id, ref, audio, duration, name)


# -- answers ---------------------------------------------------------------------------------

def record(conn: Connection, processed: list[Row], acks: list[tuple[Rendered, int | None]],
           return_path: str) -> None:
    """The idempotency rows (the answer a repeat gets) and the acks, in the outbox."""
    if processed:
        processed_rows.insert_many(conn, processed)
    enqueue_many(conn, acks, return_path=return_path)


def earlier_answer(read: Callable[[], AbstractContextManager[Session]], account_id: int,
                   key: str) -> IntakeResult | None:
    """The answer given the first time, for the same mail received again."""
    with read() as s:
        row = processed_rows.find(s, account_id, key)
        if row is None:
            return None
        ids = tuple(int(i) for i in row.job_ids.split(",") if i)
        return IntakeResult(row.code, row.reply, proven=True, job_ids=ids, duplicate=True)
