"""The one place that turns a mail into a job, or into a refusal.

Accept, decide, commit, answer: every check runs before the reply, and the job, its
deliveries, the idempotency key and the ack are written in one transaction. Only a sender
who proved to be the account (password or SMTP AUTH) gets an ack mail.

Group commit: the deciding (parse, password, page count, recipients) runs in each caller's
thread; the first caller to find nobody writing writes every mail waiting at that moment
in one transaction, so concurrent sessions share one fsync. Each caller gets its answer
only once its batch is durable.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import structlog
from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailgw.accounts import accounts, voice
from mailgw.codes import Code, detail, is_accepted, smtp_reply
from mailgw.documents.sandbox import Limits
from mailgw.inbound.mail import InboundMail, parse_mail
from mailgw.intake.decide import (
    cancel_code,
    cancel_matches,
    channel_of,
    credit_refusal,
    decide,
    read_command,
)
from mailgw.intake.facts import StoreLookups, as_scheduled, scheduled_jobs
from mailgw.intake.guessing import Deferred, Guard, GuessPolicy
from mailgw.intake.known_clients import KnownClients
from mailgw.intake.proof_dns import Prover
from mailgw.intake.verdict import AccountFacts, Ignore, MailFacts, Policy, Refuse
from mailgw.jobs.service import Jobs
from mailgw.notify.messages import AckFacts, ack_mail
from mailgw.notify.outbox import enqueue_many
from mailgw.notify.render import Rendered, Renderer
from mailgw.ops import metrics
from mailgw.ops.config import Settings
from mailgw.recipients import ListEntry
from mailgw.store import Account, Delivery, Job, ProcessedMessage, Store, utcnow
from mailgw.store.dispatch import notify_queue
from mailgw.subject_parser import Command, masked_subject

log = structlog.get_logger("mailgw.intake.service")


@dataclass(frozen=True)
class Envelope:
    mail_from: str | None  # None = unknown (IMAP); '' = the null sender
    rcpt_tos: tuple[str, ...]
    auth_login: str | None = None  # the SMTP AUTH account, already checked
    smtputf8: bool = False
    # the client's address (behind a trusted relay: from its Received header)
    client_ip: str | None = None


@dataclass(frozen=True)
class IntakeResult:
    code: int | None  # None when the mail was ignored (bounce, auto-reply)
    reply: str  # the SMTP reply line
    proven: bool = False
    job_ids: tuple[int, ...] = ()
    duplicate: bool = False
    ignored: str | None = None
    deferred: bool = False  # a 4xx: try again later (a guessed account, mail without proof)
    delay: float = 0.0  # hold the reply this long (a wrong guess: mailgw.intake.guessing)


@dataclass
class _Decision:
    """What intake learned about one mail, on its way to the transaction."""

    mail: InboundMail
    channel: str
    code: int
    lang: str
    key: str | None = None  # the idempotency key: the Message-ID, else a hash of the bytes
    detail: str = ""
    account: Account | None = None
    sender: str | None = None
    proven: bool = False
    command: Command | None = None
    recipients: list[ListEntry] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    duplicates: int = 0
    document: bytes | None = None
    document_name: str | None = None
    document_type: str | None = None
    documents_used: list[str] = field(default_factory=list)
    from_list: bool = False  # numbers came from a list or a group: one summary (notify)
    ignored: list[str] = field(default_factory=list)
    pages: int | None = None
    duration: float | None = None
    options: dict[str, str] = field(default_factory=dict)  # voice call options (accounts.voice)
    # or a fax's quality (mailgw.documents.quality)
    store_ref: str | None = None  # voice: store the sound in the library under this ref
    decided: tuple[int, str] = (0, "")  # (code, detail) before the commit, for a retry
    answered: IntakeResult | None = None  # a repeat of a mail this process answered
    dropped: str | None = None  # why an automatic message was dropped (never answered)
    delay: float = 0.0  # a wrong password: how long its reply is held (mailgw.intake.guessing)

    @property
    def numbers(self) -> list[str]:
        return [r.number for r in self.recipients]


def idempotency_key(mail: InboundMail, raw: bytes, rcpts: tuple[str, ...] = (),
                    usual: str = "") -> str:
    """(account, key) identifies a mail: its Message-ID, or its bytes when it has none;
    and its recipients, unless they are the `usual` one (the fax address): an MTA sends the
    same mail in several transactions (voice@ after fax@, recipients past its own limit),
    and each is a mail of its own, not a repeat of the first."""
    key = mail.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    to = sorted({r.strip().lower() for r in rcpts})
    if to and to != [usual]:
        return key[:900] + " to:" + hashlib.sha256("\n".join(to).encode()).hexdigest()[:24]
    return key[:998]


class Budget:
    """At most `limit` bytes of mail parsed at once: parsing a mail takes about three times
    its size (inbound.py; 28 MB at peak for a 10.4 MB mail), so concurrent large mails would
    add up. A mail larger than the whole budget runs alone. First come, first served, so a
    large mail is not starved by small ones."""

    def __init__(self, limit: int):
        self.limit = max(limit, 1)
        self.used = 0
        self.tickets = 0  # handed out
        self.serving = 0  # the ticket that may enter next
        self.cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        size = min(size, self.limit)
        with self.cond:
            ticket, self.tickets = self.tickets, self.tickets + 1
            self.cond.wait_for(lambda: self.serving == ticket and self.used + size <= self.limit)
            self.serving += 1
            self.used += size
            self.cond.notify_all()
        try:
            yield
        finally:
            with self.cond:
                self.used -= size
                self.cond.notify_all()


def _give_back_freed_memory() -> None:
    """glibc raises its mmap threshold each time a large buffer is freed, so the next large
    mails are carved from the heap, whose memory is kept: RSS ratchets up to the worst burst
    of large mails and stays there. A fixed threshold keeps buffers of 1 MB and more in
    their own mappings, given back to the system when freed (measured after 50 mails of
    10 MB: about 65 MB less at rest, and less at peak)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


_Item = tuple[_Decision, Envelope]
RECENT_ANSWERS = 10_000  # answers remembered for repeated mails (a few MB)


@dataclass
class _Writing:
    """One mail inside the batch's transaction."""

    decision: _Decision
    env: Envelope
    job: dict[str, object] | None = None  # a new job's columns, inserted with the batch's
    deliveries: list[dict[str, object]] = field(default_factory=list)  # its deliveries'
    job_id: int | None = None  # the new job's id, once inserted
    job_ids: list[int] = field(default_factory=list)  # jobs cancelled (95)

    @property
    def account(self) -> Account | None:
        return self.decision.account


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


class GroupCommit:
    """Group commit for intake, leader and followers: a caller whose mail is decided puts
    it in the queue; if nobody is writing, it becomes the writer and commits every mail
    waiting (at most `most`) in one transaction (one fsync) for everyone, then answers each
    caller; otherwise it waits for the writer to answer it (or to hand it the next batch).
    While a batch commits the next mails queue up, so batches grow with the load, and a
    lone mail waits for nobody and is written by its own thread (no hand-over).

    Callers say when they start deciding a mail (`deciding()`): a writer that finds other
    mails still being decided gives them up to `gather` seconds to join its batch, rather
    than pay a transaction's fixed cost for a batch of one.
    """

    def __init__(self, commit: Callable[[list[_Item]], list[IntakeResult]], *, most: int = 64,
                 gather: float = 0.002):
        self.commit = commit
        self.most = most
        self.gather = gather
        self.cond = threading.Condition()
        self.waiting: list[tuple[_Item, Future[IntakeResult]]] = []
        self.writing = False  # a caller's thread is committing a batch
        self.busy = 0  # mails being decided now

    @contextmanager
    def deciding(self) -> Iterator[None]:
        with self.cond:
            self.busy += 1
        try:
            yield
        finally:
            with self.cond:
                self.busy -= 1
                self.cond.notify_all()

    def run(self, item: _Item) -> IntakeResult:
        """Commit `item` (with the others waiting) and give its answer; raises what its
        commit raised."""
        future: Future[IntakeResult] = Future()
        with self.cond:
            self.waiting.append((item, future))
            self.cond.notify_all()  # a writer gathering its batch may wait for this one
            while not future.done():
                if self.writing:
                    self.cond.wait()
                    continue
                self.writing = True
                try:
                    until = time.monotonic() + self.gather
                    while self.busy and len(self.waiting) < self.most:
                        left = until - time.monotonic()
                        if left <= 0:
                            break
                        self.cond.wait(left)
                    batch, self.waiting = self.waiting[:self.most], self.waiting[self.most:]
                    self.cond.release()
                    try:
                        self._commit(batch)
                    except BaseException as exc:  # never leave a caller waiting
                        for _, waiting in batch:
                            if not waiting.done():
                                waiting.set_exception(exc)
                        raise
                    finally:
                        self.cond.acquire()
                finally:
                    self.writing = False
                    self.cond.notify_all()
        return future.result()

    def _commit(self, batch: list[tuple[_Item, Future[IntakeResult]]]) -> None:
        items = [item for item, _ in batch]
        outcomes: list[IntakeResult | BaseException]
        try:
            outcomes = list(self.commit(items))
        except Exception as exc:  # noqa: BLE001 - one bad mail must not fail the others
            if len(items) == 1:
                outcomes = [exc]
            else:  # one at a time: only the failing one fails
                log.warning("group_commit_split", size=len(items), error_type=type(exc).__name__)
                outcomes = []
                for item in items:
                    try:
                        outcomes += self.commit([item])
                    except Exception as one:  # noqa: BLE001 - raised in its caller's thread
                        outcomes.append(one)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class Intake:
    def __init__(self, store: Store, settings: Settings, renderer: Renderer,
                 *, clock: Callable[[], datetime] = utcnow, jobs: Jobs | None = None):
        self.store = store
        self.settings = settings
        self.renderer = renderer
        self.clock = clock
        self.limits = Limits.of(settings.limits)
        self.policy = Policy.of(settings)
        self.jobs = jobs or Jobs(store, settings, renderer)  # cancels by mail finish jobs
        self.committer = GroupCommit(self._commit_batch)
        self.accounts = accounts.MailAccounts(store.read_engine)
        self.recent: OrderedDict[tuple[int, str], IntakeResult] = OrderedDict()
        self.recent_lock = threading.Lock()
        self.parsing = Budget(settings.limits.parse_memory)
        self.prover = Prover.of(settings.proof)
        self.guard = Guard(GuessPolicy.of(settings.limits))
        self.known = KnownClients(store, settings.limits.known_client_ttl)
        _give_back_freed_memory()

    # -- addresses -------------------------------------------------------------------------

    def channel_of(self, rcpt: str) -> str | None:
        """fax | voice for an address we accept at RCPT, None for anything else."""
        return channel_of(rcpt, self.policy)

    # -- the pipeline ----------------------------------------------------------------------

    def handle(self, raw: bytes, env: Envelope) -> IntakeResult:
        """Decide and commit; never raises for bad input (our own failures do raise)."""
        with self.committer.deciding(), self.parsing.hold(len(raw)):
            mail = parse_mail(raw, envelope_from=env.mail_from)
            bound = log.bind(message_id=mail.message_id, sender=mail.from_addr)
            try:
                d = self._decide(mail, env, raw)
            except Deferred as exc:  # nothing is written, nothing is sent about a guess
                bound.info("mail_deferred", reason="password checks spent", peer=env.client_ip)
                return IntakeResult(None, str(exc), deferred=True,
                                    delay=self.guard.client_delay(env.client_ip))
            if d.dropped is not None:
                bound.info("mail_ignored", reason=mail.auto_reply_reason)
                metrics.mail_decided(None, ignored=True)
                return IntakeResult(None, "250 2.0.0 Automatic message dropped (not a command)",
                                    ignored=d.dropped)
        del raw  # the caller may have let go of it too: only the decision waits for the commit
        if d.answered is not None:
            bound.info("mail_duplicate", code=d.answered.code)
            self._known(d, env)
            return d.answered
        d.decided = (d.code, d.detail)
        try:
            result = self.committer.run((d, env))
        except IntegrityError:
            # The same mail committed concurrently (another connection, another node).
            if d.account is not None and d.key:
                earlier = self._earlier(d.account.id, d.key)
                if earlier is not None:
                    return earlier
            raise
        if result.proven and d.account is not None and d.key:
            self._remember(d.account.id, d.key, result)
        self._known(d, env)
        if d.delay:
            result = dataclasses.replace(result, delay=d.delay)
        if result.duplicate:
            bound.info("mail_duplicate", code=result.code)
            return result
        bound.info("mail_decided", code=result.code, proven=result.proven,
                   job_id=result.job_ids[0] if len(result.job_ids) == 1 else None,
                   job_ids=list(result.job_ids))
        metrics.mail_decided(result.code)
        return result

    def _known(self, d: _Decision, env: Envelope) -> None:
        """A client address that gave the account's right password (or its SMTP AUTH)
        proves that account from now on, while guessers are slowed (mailgw.intake.guessing)."""
        if d.proven and d.account is not None and env.client_ip:
            self.known.remember(d.account.id, d.account.email, env.client_ip)

    def _remember(self, account_id: int, key: str, result: IntakeResult) -> None:
        """A proven mail's answer, for its repeats (an MTA that lost our 250 sends it again):
        those are answered after the password check, without reading the document again."""
        with self.recent_lock:
            self.recent[(account_id, key)] = dataclasses.replace(result, duplicate=True)
            while len(self.recent) > RECENT_ANSWERS:
                self.recent.popitem(last=False)

    def _earlier(self, account_id: int, key: str) -> IntakeResult | None:
        with self.store.read() as s:
            row = s.scalar(select(ProcessedMessage).where(
                ProcessedMessage.account_id == account_id, ProcessedMessage.message_id == key))
            return None if row is None else _answered(row)

    def _find_account(self, mail: InboundMail, env: Envelope) -> tuple[Account | None,
                                                                       str | None]:
        """The account (by SMTP AUTH login, else From) and the sender's address."""
        if env.auth_login:
            account = self.accounts.get(login=env.auth_login)
            return account, account.email if account else None
        if mail.from_addr:
            account = self.accounts.get(sender=mail.from_addr)
            return account, mail.from_addr.lower() if account else None
        return None, None

    def _decide(self, mail: InboundMail, env: Envelope, raw: bytes) -> _Decision:
        """Gather the facts, ask mailgw.intake.decide, and keep its verdict for the commit."""
        d = _Decision(mail=mail, channel="fax", code=0, lang=self.settings.notify.default_lang,
                      key=idempotency_key(mail, raw, env.rcpt_tos, self.policy.fax_address))
        if not mail.is_auto_reply and (env.auth_login or mail.from_addr):
            d.account, d.sender = self._find_account(mail, env)
        account = d.account
        facts = MailFacts(mail, env.rcpt_tos, env.auth_login,
                          proof=frozenset({"auth"}) if env.auth_login else frozenset())
        lookups = None
        if account is not None:
            facts = dataclasses.replace(facts, proof=self._proof(mail, env, raw, account))
            d.lang = account.lang
            lookups = StoreLookups(self.store.read, account.id, account.password_hash,
                                   self.limits, self._gate(d, account, env, facts.proof))
            if d.key and self._repeat(d, facts, account, lookups):
                return d
        verdict = decide(facts, AccountFacts.of(account) if account else None,
                         lookups, self.clock(), policy=self.policy)
        found = verdict.found
        d.channel, d.proven, d.command = found.channel, found.proven, found.command
        d.recipients, d.invalid, d.duplicates = found.recipients, found.invalid, found.duplicates
        d.documents_used, d.ignored, d.pages = found.used, found.ignored, found.pages
        d.from_list = found.from_list
        if isinstance(verdict, Ignore):
            d.dropped = verdict.reason
        elif isinstance(verdict, Refuse):
            d.code = verdict.code
            d.detail = verdict.detail.text(d.lang) if verdict.detail else ""
        else:
            plan = verdict.plan
            d.code, d.store_ref, d.options = plan.code, plan.store_ref, dict(plan.options)
            d.detail = "; ".join(n.text(d.lang) for n in plan.notes)
            if plan.document is not None:
                doc = plan.document
                d.document, d.document_name, d.document_type = doc.data, doc.name, doc.type
                d.duration = doc.duration
        return d  # credits (83) and cancels (95/96) are settled at commit, under lock

    def _proof(self, mail: InboundMail, env: Envelope, raw: bytes,
               account: Account) -> frozenset[str]:
        """What proves the sender beyond the password: SMTP AUTH, a client address that
        delivered this account's password before (mailgw.intake.known_clients), and a DMARC-aligned
        pass for the From domain (mailgw.intake.proof: trusted headers, or our own checks)."""
        found = {"auth"} if env.auth_login else set()
        if self.known.is_known(account.id, env.client_ip):
            found.add("known_client")
        try:
            if self.prover.dmarc(raw, mail.from_addr, mail_from=env.mail_from,
                                 client_ip=env.client_ip):
                found.add("dmarc")
        except Exception as exc:  # noqa: BLE001 - no proof, never a failed mail
            log.warning("proof_error", error_type=type(exc).__name__)
        return frozenset(found)

    def _gate(self, d: _Decision, account: Account, env: Envelope, proof: frozenset[str]
              ) -> Callable[[bool, Callable[[], bool]], bool]:
        """The account's password check, counted and bounded by the guard: a wrong one
        sets the delay of the reply; without proof and past the budget, Deferred."""
        def gate(verified: bool, verify: Callable[[], bool]) -> bool:
            right, delay = self.guard.check(account.email, env.client_ip, bool(proof), verify,
                                            verified=verified)
            d.delay = max(d.delay, delay)
            return right

        return gate

    def _repeat(self, d: _Decision, facts: MailFacts, account: Account,
                lookups: StoreLookups) -> bool:
        """A mail this process answered, sent again by its proven sender: the same answer,
        without reading its documents again (only the Subject and the password are)."""
        with self.recent_lock:
            if (account.id, d.key) not in self.recent:
                return False
        _, proven = read_command(facts, AccountFacts.of(account), lookups, self.clock())
        if proven:
            with self.recent_lock:
                d.answered = self.recent.get((account.id, cast(str, d.key)))
        return d.answered is not None

    def _commit_batch(self, items: list[_Item]) -> list[IntakeResult]:
        """Write a batch in one transaction: one multi-row INSERT per table for the whole
        batch (Core, not ORM objects: this runs for every mail). A second copy inside the
        batch gets its first copy's answer and writes nothing. A mail committed before is
        not looked for (one query less per batch): repeats this process answered are caught
        before (`recent`), and any other repeat breaks the idempotency key's unique index,
        so the batch is retried mail by mail and that one gets the stored answer
        (`handle`, `_earlier`)."""
        now = self.clock()
        new: list[_Writing] = []
        answers: list[tuple[int, bool]] = []  # (index in new, is a copy)
        first: dict[tuple[int, str], int] = {}  # (account, key) -> its index in new
        orm = any(d.store_ref or (d.command is not None and d.command.cancel) for d, _ in items)
        with self._transaction(orm) as (conn, s):
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
            self._insert_jobs(conn, [w for w in new if w.job is not None])
            processed: list[dict[str, object]] = []
            acks: list[tuple[Rendered, int | None]] = []
            results = [self._answer(w, now, processed, acks) for w in new]
            if processed:
                conn.execute(_INSERT_PROCESSED, processed)
            enqueue_many(conn, acks, return_path=self.settings.notify.return_path)
        return [dataclasses.replace(results[i], duplicate=True) if copy else results[i]
                for i, copy in answers]

    @contextmanager
    def _transaction(self, orm: bool) -> Iterator[tuple[Connection, Session | None]]:
        """The batch's transaction: a Core connection, and an ORM session only for the rare
        batch that cancels jobs or stores a voice message (code shared with the CLI)."""
        if orm:
            with self.store.tx() as s:
                yield s.connection(), s
        else:
            with self.store.engine.begin() as conn:
                yield conn, None

    def _insert_jobs(self, conn: Connection, writings: list[_Writing]) -> None:
        """The batch's new jobs in one INSERT (their ids back, in order), then all their
        deliveries in another."""
        if not writings:
            return
        ids = conn.execute(_INSERT_JOBS, [w.job for w in writings if w.job]).scalars().all()
        deliveries = []
        for w, job_id in zip(writings, ids, strict=True):
            w.job_id = job_id
            for row in w.deliveries:
                row["job_id"] = job_id
                deliveries.append(row)
        if deliveries:
            conn.execute(_INSERT_DELIVERIES, deliveries)
        notify_queue(conn)

    def _write(self, conn: Connection, s: Session | None, d: _Decision, env: Envelope,
               now: datetime, credits: dict[int, int | None]) -> _Writing:
        """The mail's changes (a new job's rows are kept for the batch's INSERTs)."""
        d.code, d.detail = d.decided  # a retry after a failed batch starts afresh
        w = _Writing(d, env)
        cmd = d.command
        if w.account is None:
            return w
        if d.proven and cmd is not None and cmd.cancel and is_accepted(d.code):
            assert s is not None
            w.job_ids = self._cancel(s, w.account.id, cmd, d.numbers)
            d.code = cancel_code(w.job_ids)
            credits.pop(w.account.id, None)  # refunded: read the balance again
        elif d.store_ref and d.code == Code.SENDING and d.document:
            assert s is not None
            replaced = voice.store_message(s, w.account.id, d.store_ref, d.document,
                                           d.duration or 0.0, d.document_name)
            d.detail = detail("message_replaced" if replaced else "message_stored", d.lang,
                              ref=d.store_ref, seconds=round(d.duration or 0))
        elif is_accepted(d.code) and cmd is not None:
            if self._reserve_credits(conn, w.account.id, d, credits):
                self._new_job(w, d, cmd, now, limited=credits[w.account.id] is not None)
        return w

    def _answer(self, w: _Writing, now: datetime, processed: list[dict[str, object]],
                acks: list[tuple[Rendered, int | None]]) -> IntakeResult:
        """The reply, the idempotency row and the ack, once the job has its id."""
        d = w.decision
        d.code = int(d.code)  # a plain number from here on (logs, store, headers)
        job_ids = [w.job_id] if w.job_id is not None else w.job_ids
        reply = smtp_reply(d.code, d.lang, self._reply_detail(d, job_ids), utf8=w.env.smtputf8)
        if w.account is not None and d.proven and d.sender:
            if d.key:
                processed.append({"account_id": w.account.id, "message_id": d.key,
                                  "code": d.code, "reply": reply,
                                  "job_ids": ",".join(map(str, job_ids)), "created_at": now,
                                  "via_imap": False})
            acks.append((self._ack(d, w.account, d.command, job_ids, now),
                         job_ids[0] if job_ids else None))
        return IntakeResult(d.code, reply, proven=d.proven, job_ids=tuple(job_ids))

    def _cost(self, d: _Decision) -> int:
        return len(d.recipients) * ((d.pages or 1) if d.channel == "fax" else 1)

    def _reserve_credits(self, conn: Connection, account_id: int, d: _Decision,
                         credits: dict[int, int | None]) -> bool:
        """Take the credits in the job's transaction; never below zero, even when racing.
        The balance is read once per transaction (locked on PostgreSQL; SQLite's BEGIN
        IMMEDIATE already serialises writers), then followed in `credits`; the debit is
        relative (credits - cost), like the dispatcher's refunds."""
        if account_id not in credits:
            if d.account is not None and d.account.credits is None:
                credits[account_id] = None  # no limit a second ago (MailAccounts): no read
            else:
                read = _CREDITS_LOCKED if self.store.is_postgres else _CREDITS
                credits[account_id] = conn.execute(read, {"account": account_id}).scalar()
        left = credits[account_id]
        if left is None:
            return True
        cost = self._cost(d)
        refusal = credit_refusal(left, cost)
        if refusal is not None:
            d.code = refusal.code
            d.detail = refusal.detail.text(d.lang) if refusal.detail else ""
            return False
        conn.execute(_DEBIT, {"account": account_id, "cost": cost})
        credits[account_id] = left - cost
        return True

    def _reply_detail(self, d: _Decision, job_ids: list[int]) -> str:
        if job_ids:
            return ("job " if len(job_ids) == 1 else "jobs ") + ", ".join(map(str, job_ids))
        return d.detail

    def _new_job(self, w: _Writing, d: _Decision, cmd: Command, now: datetime, *,
                 limited: bool) -> None:
        """The job's and its deliveries' columns; the batch inserts them all at once."""
        assert w.account is not None
        account = w.account
        send_at = cmd.when_utc
        w.job = {
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
        each = ((d.pages or 1) if d.channel == "fax" else 1) if limited else 0
        w.deliveries = [{
            "job_id": None, "number": entry.number,
            "state": "scheduled" if send_at else "queued",
            "next_attempt_at": send_at or now, "attempts": 0, "pages_sent": 0,
            "pages_total": d.pages if d.channel == "fax" else None, "credits_reserved": each,
            "cancel_requested": False,
            "columns": json.dumps(dict(entry.columns), ensure_ascii=False)
            if entry.columns else None} for entry in d.recipients]

    def _cancel(self, s: Session, account_id: int, cmd: Command, numbers: list[str]) -> list[int]:
        """Cancel the account's scheduled jobs with the same time and numbers (or ref);
        their credits come back and each cancelled number gets its notice."""
        if cmd.when_utc is None:
            return []
        jobs = {job.id: job for job in scheduled_jobs(s, account_id, cmd.when_utc)}
        cancelled = cancel_matches(map(as_scheduled, jobs.values()), numbers, cmd.ref)
        self.jobs.cancel_scheduled(s, [jobs[job_id] for job_id in cancelled])
        return cancelled

    def _ack(self, d: _Decision, account: Account, cmd: Command | None,
             job_ids: list[int], now: datetime) -> Rendered:
        assert d.sender is not None
        facts = AckFacts(
            code=d.code, to=d.sender, lang=account.lang, tz=account.tz, channel=d.channel,
            received=now, original_subject=masked_subject(d.mail.subject),
            original_message_id=d.mail.message_id, job_ids=job_ids, numbers=d.numbers,
            invalid_numbers=d.invalid, duplicates=d.duplicates, pages=d.pages,
            documents=d.documents_used, ignored=d.ignored,
            send_at=cmd.when_utc if cmd is not None else None,
            ref=cmd.ref if cmd else None, comment=cmd.comment if cmd else None,
            detail=d.detail,
            quality=d.options.get("quality") if d.channel == "fax" and job_ids else None)
        return ack_mail(self.renderer, facts)


def _answered(row: ProcessedMessage) -> IntakeResult:
    """The answer given the first time, for the same mail received again."""
    ids = tuple(int(i) for i in row.job_ids.split(",") if i)
    return IntakeResult(row.code, row.reply, proven=True, job_ids=ids, duplicate=True)

