"""The one place that turns a mail into a job, or into a refusal: `Intake.handle`.

Accept, decide, commit, answer: gather the facts (the account, the proofs, the lookups),
ask the pure decision (mailgw.intake.decide), hand the decision to the group commit
(mailgw.intake.batching), whose writer (mailgw.intake.writer) writes the job, its
deliveries, the idempotency key and the ack in one transaction; then answer. Every check
runs before the reply. Only a sender who proved to be the account (password or SMTP AUTH)
gets an ack mail.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import cast

import structlog
from sqlalchemy.exc import IntegrityError

from mailgw.accounts import accounts
from mailgw.codes import detail
from mailgw.documents.sandbox import Limits
from mailgw.inbound.mail import InboundMail, parse_mail
from mailgw.intake import commit, gather
from mailgw.intake.batching import GroupCommit
from mailgw.intake.budget import Budget, give_back_freed_memory
from mailgw.intake.decide import decide, read_command
from mailgw.intake.facts import StoreLookups
from mailgw.intake.guessing import Deferred, Guard, GuessPolicy
from mailgw.intake.known_clients import KnownClients
from mailgw.intake.model import Decision, Envelope, IntakeResult, idempotency_key
from mailgw.intake.preview import Previews
from mailgw.intake.proof_dns import Prover
from mailgw.intake.routes import channel_of
from mailgw.intake.verdict import AccountFacts, MailFacts, Policy
from mailgw.intake.writer import Item, Writer
from mailgw.jobs.service import Jobs
from mailgw.notify.render import Renderer
from mailgw.ops import metrics
from mailgw.ops.config import Settings
from mailgw.store import Account, Store, utcnow

__all__ = ["Envelope", "Intake", "IntakeResult"]

log = structlog.get_logger("mailgw.intake.service")

RECENT_ANSWERS = 10_000  # answers remembered for repeated mails (a few MB)


class Intake:
    """One per process, shared by the SMTP handler and the IMAP pollers (both call
    `handle`); it owns the parse budget, the guard, and the answers remembered for repeats."""

    def __init__(self, store: Store, settings: Settings, renderer: Renderer,
                 *, clock: Callable[[], datetime] = utcnow, jobs: Jobs | None = None):
        self.store = store
        self.settings = settings
        self.renderer = renderer
        self.clock = clock
        self.limits = Limits.of(settings.limits)
        self.policy = Policy.of(settings)
        self.jobs = jobs or Jobs(store, settings, renderer)  # creates and cancels jobs
        self.committer: GroupCommit[Item, IntakeResult] = GroupCommit(Writer(
            store, renderer, self.jobs, return_path=settings.notify.return_path,
            clock=lambda: self.clock()))
        self.accounts = accounts.MailAccounts(store.read_engine)
        self.recent: OrderedDict[tuple[int, str], IntakeResult] = OrderedDict()
        self.recent_lock = threading.Lock()
        self.parsing = Budget(settings.limits.parse_memory)
        self.prover = Prover.of(settings.proof)
        self.guard = Guard(GuessPolicy.of(settings.limits))
        self.known = KnownClients(store, settings.limits.known_client_ttl)
        self.previews = Previews(self.limits, settings.notify.templates_dir or None)
        give_back_freed_memory()

    # -- addresses -------------------------------------------------------------------------

    def channel_of(self, rcpt: str) -> str | None:
        """fax | voice for an address we accept at RCPT, None for anything else."""
        return channel_of(rcpt, self.policy)

    # -- the pipeline ----------------------------------------------------------------------

    def handle(self, raw: bytes, env: Envelope) -> IntakeResult:
        """Decide and commit; never raises for bad input (our own failures do raise)."""
        with self.committer.deciding(), self.parsing.hold(len(raw)):
            mail = parse_mail(raw, envelope_from=env.mail_from)
            first = self._first(mail, env, raw)
        del raw  # the caller may have let go of it too: only the decision waits for the commit
        return first if isinstance(first, IntakeResult) else self._commit(first, env)

    def handle_request(self, mail: InboundMail, env: Envelope) -> IntakeResult:
        """The same pipeline for facts that came without a mail (an HTTP request, built by
        mailgw.intake.requests): no bytes to parse or to prove, so the request's
        `message_id` is its idempotency key (the HTTP twin of the Message-ID rule)."""
        size = sum(a.size for a in mail.attachments) + len(mail.text_body)
        with self.committer.deciding(), self.parsing.hold(size):
            first = self._first(mail, env, b"")
        return first if isinstance(first, IntakeResult) else self._commit(first, env)

    def _first(self, mail: InboundMail, env: Envelope, raw: bytes) -> IntakeResult | Decision:
        """The decision, or the answer that needs no commit (deferred, dropped)."""
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
        return d

    def _commit(self, d: Decision, env: Envelope) -> IntakeResult:
        bound = log.bind(message_id=d.mail.message_id, sender=d.mail.from_addr)
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

    def _known(self, d: Decision, env: Envelope) -> None:
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
        return commit.earlier_answer(self.store.read, account_id, key)

    def _decide(self, mail: InboundMail, env: Envelope, raw: bytes) -> Decision:
        """Gather the facts, ask mailgw.intake.decide, and keep its verdict for the commit."""
        d = Decision(mail=mail, channel="fax", code=0, lang=self.settings.notify.default_lang,
                      key=idempotency_key(mail, raw, env.rcpt_tos, self.policy.fax_address))
        if not mail.is_auto_reply and (env.auth_login or mail.from_addr):
            d.account, d.sender = gather.find_account(self.accounts.get, mail, env.auth_login)
        account = d.account
        facts = MailFacts(mail, env.rcpt_tos, env.auth_login,
                          proof=frozenset({"auth"}) if env.auth_login else frozenset())
        lookups = None
        if account is not None:
            facts = dataclasses.replace(facts, proof=gather.prove(
                self.prover, raw, mail, auth_login=env.auth_login, mail_from=env.mail_from,
                client_ip=env.client_ip,
                known_client=self.known.is_known(account.id, env.client_ip)))
            d.lang = account.lang
            lookups = StoreLookups(self.store.read, account.id, account.password_hash,
                                   self.limits, self._gate(d, account, env, facts.proof))
            if d.key and self._repeat(d, facts, account, lookups):
                return d
        verdict = decide(facts, AccountFacts.of(account) if account else None,
                         lookups, self.clock(), policy=self.policy)
        d.take(verdict)
        if d.preview and account is not None:  # its pages, for the ack (never dialled)
            failed = self.previews.render(d, account)
            if failed:
                d.detail = "; ".join(filter(None, (d.detail, detail(
                    "preview_failed", d.lang, error=failed[:200]))))
        return d  # credits (83) and cancels (95/96) are settled at commit, under lock

    def _gate(self, d: Decision, account: Account, env: Envelope, proof: frozenset[str]
              ) -> Callable[[bool, Callable[[], bool]], bool]:
        """The account's password check, counted and bounded by the guard: a wrong one
        sets the delay of the reply; without proof and past the budget, Deferred."""
        def gate(verified: bool, verify: Callable[[], bool]) -> bool:
            right, delay = self.guard.check(account.email, env.client_ip, bool(proof), verify,
                                            verified=verified)
            d.delay = max(d.delay, delay)
            return right

        return gate

    def _repeat(self, d: Decision, facts: MailFacts, account: Account,
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
