"""The values intake passes between its steps: an `Envelope` in, a `Decision` on its way to
the commit, an `IntakeResult` out (the SMTP reply, or what the IMAP poller records)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mailgw.inbound.mail import InboundMail
from mailgw.intake.verdict import Ignore, Refuse, Verdict
from mailgw.recipients import ListEntry
from mailgw.store import Account
from mailgw.subject_parser import Command


@dataclass(frozen=True)
class Envelope:
    mail_from: str | None  # None = unknown (IMAP); '' = the null sender
    rcpt_tos: tuple[str, ...]
    auth_login: str | None = None  # the SMTP AUTH account, already checked
    smtputf8: bool = False
    # the client's address (behind a trusted relay: from its Received header)
    client_ip: str | None = None
    ack_mail: bool = True  # False: the caller answers itself (HTTP), no ack mail is written


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
    lang: str = ""  # the language of the answer (the account's, else the default)
    detail: str = ""  # what the ack would add to the code's sentence (an HTTP answer's text)


@dataclass
class Decision:
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
    preview: bool = False  # render and answer, never dial (mailgw.intake.trial)
    # the preview's pages for its ack: all of them (PDF) and the first (PNG)
    preview_pdf: bytes | None = field(default=None, repr=False)
    preview_png: bytes | None = field(default=None, repr=False)
    decided: tuple[int, str] = (0, "")  # (code, detail) before the commit, for a retry
    answered: IntakeResult | None = None  # a repeat of a mail this process answered
    dropped: str | None = None  # why an automatic message was dropped (never answered)
    delay: float = 0.0  # a wrong password: how long its reply is held (mailgw.intake.guessing)

    @property
    def numbers(self) -> list[str]:
        return [r.number for r in self.recipients]

    def take(self, verdict: Verdict) -> None:
        """Keep the verdict for the commit: what was found, and the plan or the refusal
        (its detail written in the account's language)."""
        found = verdict.found
        self.channel, self.proven, self.command = found.channel, found.proven, found.command
        self.recipients, self.invalid = found.recipients, found.invalid
        self.duplicates, self.documents_used = found.duplicates, found.used
        self.ignored, self.pages, self.from_list = found.ignored, found.pages, found.from_list
        if isinstance(verdict, Ignore):
            self.dropped = verdict.reason
        elif isinstance(verdict, Refuse):
            self.code = verdict.code
            self.detail = verdict.explain(self.lang)
        else:
            plan = verdict.plan
            self.code, self.store_ref, self.options = plan.code, plan.store_ref, dict(plan.options)
            self.preview = plan.action == "preview"
            self.detail = "; ".join(n.text(self.lang) for n in plan.notes)
            if plan.document is not None:
                doc = plan.document
                self.document, self.document_name, self.document_type = \
                    doc.data, doc.name, doc.type
                self.duration = doc.duration


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
