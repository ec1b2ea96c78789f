"""Writing a batch of decided mails in one transaction (mailgw.intake.batching calls it).

For each mail: the credits (83), the cancel (95/96) or the library message, settled under
the transaction from the values it read (mailgw.intake.settle decides, mailgw.intake.commit
reads and writes); then the reply, the idempotency row and the ack, once the job has its id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mailgw.codes import detail, smtp_reply
from mailgw.intake import ack, commit, settle
from mailgw.intake.model import Decision, Envelope, IntakeResult
from mailgw.jobs.service import Jobs
from mailgw.notify.render import Rendered, Renderer
from mailgw.store import Account, Store
from mailgw.subject_parser import Command

Item = tuple[Decision, Envelope]


@dataclass
class _Writing:
    """One mail inside the batch's transaction."""

    decision: Decision
    env: Envelope
    job: commit.Row | None = None  # a new job's columns, inserted with the batch's
    deliveries: list[commit.Row] = field(default_factory=list)  # its deliveries'
    job_id: int | None = None  # the new job's id, once inserted
    job_ids: list[int] = field(default_factory=list)  # jobs cancelled (95)

    @property
    def account(self) -> Account | None:
        return self.decision.account


class Writer:
    """The commit function intake's group commit runs for each batch."""

    def __init__(self, store: Store, renderer: Renderer, jobs: Jobs, *,
                 return_path: str, clock: Callable[[], datetime]):
        self.store = store
        self.renderer = renderer
        self.jobs = jobs  # creates the jobs, debits their credits, cancels
        self.return_path = return_path
        self.clock = clock

    def __call__(self, items: list[Item]) -> list[IntakeResult]:
        """Write a batch in one transaction: one multi-row INSERT per table for the whole
        batch. A second copy inside the batch gets its first copy's answer and writes
        nothing. A mail committed before is not looked for (one query less per batch):
        repeats this process answered are caught before (`Intake.recent`), and any other
        repeat breaks the idempotency key's unique index, so the batch is retried mail by
        mail and that one gets the stored answer (`Intake.handle`)."""
        now = self.clock()
        new: list[_Writing] = []
        answers: list[tuple[int, bool]] = []  # (index in new, is a copy)
        first: dict[tuple[int, str], int] = {}  # (account, key) -> its index in new
        orm = any(d.store_ref or (d.command is not None and d.command.cancel) for d, _ in items)
        with commit.transaction(self.store, orm) as (conn, s):
            credits: dict[int, int | None] = {}  # accounts' credits as this batch left them
            for d, env in items:
                key = (d.account.id, d.key) if d.proven and d.account and d.key else None
                if key is not None and key in first:
                    answers.append((first[key], True))
                else:
                    if key is not None:
                        first[key] = len(new)
                    answers.append((len(new), False))
                    new.append(self._write(conn, s, d, env, now, credits))
            jobs = [w for w in new if w.job is not None]
            ids = self.jobs.create(conn, [(w.job, w.deliveries) for w in jobs if w.job])
            for w, job_id in zip(jobs, ids, strict=True):
                w.job_id = job_id
            processed: list[commit.Row] = []
            acks: list[tuple[Rendered, int | None]] = []
            results = [self._answer(w, now, processed, acks) for w in new]
            commit.record(conn, processed, acks, self.return_path)
        return [dataclasses.replace(results[i], duplicate=True) if copy else results[i]
                for i, copy in answers]

    def _write(self, conn: Connection, s: Session | None, d: Decision, env: Envelope,
               now: datetime, credits: dict[int, int | None]) -> _Writing:
        """The mail's changes (a new job's rows are kept for the batch's INSERTs)."""
        d.code, d.detail = d.decided  # a retry after a failed batch starts afresh
        w = _Writing(d, env)
        cmd, account = d.command, w.account
        todo = settle.action(has_account=account is not None, proven=d.proven, code=d.code,
                             cancel=cmd is not None and cmd.cancel, store_ref=d.store_ref,
                             has_document=bool(d.document), has_command=cmd is not None,
                             preview=d.preview)
        if account is None or todo == "none":
            return w
        if todo == "cancel":
            assert s is not None and cmd is not None
            w.job_ids = self._cancel(s, account.id, cmd, d.numbers)
            d.code = settle.cancel_code(w.job_ids)
            credits.pop(account.id, None)  # refunded: read the balance again
        elif todo == "store":
            assert s is not None and d.store_ref and d.document
            replaced = commit.store_message(s, account.id, d.store_ref, d.document,
                                            d.duration or 0.0, d.document_name)
            d.detail = detail("message_replaced" if replaced else "message_stored", d.lang,
                              ref=d.store_ref, seconds=round(d.duration or 0))
        else:
            assert cmd is not None
            if self._reserve_credits(conn, account, d, credits):
                self._new_job(w, d, cmd, now, limited=credits[account.id] is not None)
        return w

    def _answer(self, w: _Writing, now: datetime, processed: list[commit.Row],
                acks: list[tuple[Rendered, int | None]]) -> IntakeResult:
        """The reply, the idempotency row and the ack, once the job has its id."""
        d = w.decision
        d.code = int(d.code)  # a plain number from here on (logs, store, headers)
        job_ids = [w.job_id] if w.job_id is not None else w.job_ids
        reply = smtp_reply(d.code, d.lang, ack.reply_detail(d, job_ids), utf8=w.env.smtputf8,
                           preview=d.preview)
        if w.account is not None and d.proven and d.sender:
            if d.key:
                processed.append({"account_id": w.account.id, "message_id": d.key,
                                  "code": d.code, "reply": reply,
                                  "job_ids": ",".join(map(str, job_ids)), "created_at": now,
                                  "via_imap": False})
            if w.env.ack_mail:
                acks.append((ack.ack(self.renderer, d, w.account, job_ids, now),
                             job_ids[0] if job_ids else None))
        return IntakeResult(d.code, reply, proven=d.proven, job_ids=tuple(job_ids),
                            lang=d.lang, detail=ack.reply_detail(d, job_ids))

    def _reserve_credits(self, conn: Connection, account: Account, d: Decision,
                         credits: dict[int, int | None]) -> bool:
        """Take the credits in the job's transaction; never below zero, even when racing.
        The balance is read once per transaction, then followed in `credits`."""
        if account.id not in credits:
            if account.credits is None:
                credits[account.id] = None  # no limit a second ago (MailAccounts): no read
            else:
                credits[account.id] = self.jobs.balance(conn, account.id)
        got = settle.charge(credits[account.id],
                            settle.cost(d.channel, len(d.recipients), d.pages))
        if got.refusal is not None:
            d.code, d.detail = got.refusal.code, got.refusal.explain(d.lang)
            return False
        if got.left is not None:
            self.jobs.debit(conn, account.id, got.debit)
        credits[account.id] = got.left
        return True

    def _new_job(self, w: _Writing, d: Decision, cmd: Command, now: datetime, *,
                 limited: bool) -> None:
        """The job's and its deliveries' columns; the batch inserts them all at once."""
        assert w.account is not None
        w.job = commit.job_row(d, w.account, cmd, now)
        each = settle.units(d.channel, d.pages) if limited else 0
        w.deliveries = commit.delivery_rows(
            d.recipients, cmd.when_utc, now,
            pages_total=d.pages if d.channel == "fax" else None, reserved=each)

    def _cancel(self, s: Session, account_id: int, cmd: Command, numbers: list[str]) -> list[int]:
        """Cancel the account's scheduled jobs with the same time and numbers (or ref)."""
        if cmd.when_utc is None:
            return []
        jobs = {job.id: job for job in self.jobs.scheduled(s, account_id, cmd.when_utc)}
        cancelled = settle.cancel_matches(map(commit.as_scheduled, jobs.values()), numbers,
                                          cmd.ref)
        self.jobs.cancel_scheduled(s, [jobs[i] for i in cancelled])
        return cancelled
