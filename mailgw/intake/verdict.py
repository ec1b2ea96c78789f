"""The decision's vocabulary: the facts it reads and the verdicts it gives (mailgw.intake.decide).

Plain values, so any entrance (SMTP and IMAP intake, `mailgw parse`, tests) can build them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from mailgw.accounts import call_options as voice
from mailgw.codes import Code, Detail, is_accepted, sentence
from mailgw.inbound.mail import InboundMail
from mailgw.recipients import ListEntry
from mailgw.subject_parser import Command

if TYPE_CHECKING:
    from mailgw.documents.checks import DocumentCheck, SoundCheck
    from mailgw.ops.config import Settings
    from mailgw.store import Account

Channel = Literal["fax", "voice"]


@dataclass(frozen=True)
class Policy:
    """What the operator configured that the decision reads: addresses and limits."""

    fax_address: str  # lower-cased
    voice_address: str
    domain: str
    max_subject_bytes: int
    max_recipients: int
    max_list_lines: int
    max_pages: int
    max_sound_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        gw, lim = settings.gateway, settings.limits
        return cls(gw.fax_address.lower(), gw.voice_address.lower(), gw.domain.lower(),
                   lim.max_subject_bytes, lim.max_recipients, lim.max_list_lines,
                   lim.max_pages, lim.max_sound_seconds)


@dataclass(frozen=True)
class MailFacts:
    mail: InboundMail
    rcpts: tuple[str, ...]  # the envelope's recipients (`parse --to`, or the fax address)
    auth_login: str | None = None  # the SMTP AUTH account, already checked
    # proofs beyond the password: "auth", "dmarc", "known_client"
    proof: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AccountFacts:
    """The account the sender proved (or claims) to be."""

    id: int
    region: str
    tz: str
    lang: str
    voice_defaults: Mapping[str, str] = field(default_factory=dict)
    require: str = "password"  # what proves the sender beyond the password (mailgw.intake.proof)
    quality: str = "high"  # the account's fax quality (mailgw.documents.quality)
    cover: bool = False  # a cover page on every fax (mailgw.documents.cover_options)
    header_line: bool = False  # a header line on every page
    test_number: str | None = None  # the only number a `test: yes` mail dials (intake.trial)

    @classmethod
    def of(cls, account: Account) -> AccountFacts:
        defaults = voice.load_defaults(account) if account.voice_options else {}
        return cls(account.id, account.region, account.tz, account.lang, defaults,
                   account.require or "password", account.quality or "high",
                   bool(account.cover), bool(account.header_line), account.test_number)


@dataclass(frozen=True)
class LibraryMessage:
    ref: str
    duration: float
    audio: bytes = field(default=b"", repr=False)


class Lookups(Protocol):
    """What the decision asks of the world, only when it gets that far."""

    def password_ok(self, password: str) -> bool: ...
    def groups(self, names: tuple[str, ...]) -> tuple[list[ListEntry], list[str]]: ...
    def library_message(self, ref: str) -> LibraryMessage | None: ...
    def caller_ids(self) -> list[str]: ...
    def pdf(self, data: bytes) -> DocumentCheck: ...
    def picture(self, data: bytes, quality: str = "high") -> DocumentCheck: ...
    def office(self, data: bytes, filename: str | None) -> DocumentCheck: ...
    def merge(self, parts: list[bytes]) -> bytes | None: ...
    def sound(self, data: bytes, max_seconds: float) -> SoundCheck: ...


@dataclass(frozen=True)
class Document:
    data: bytes = field(repr=False)
    name: str | None
    type: str  # application/pdf | audio/wav
    pages: int | None = None
    duration: float | None = None


@dataclass
class Found:
    """What was read from the mail on the way to the verdict, whatever it is."""

    channel: Channel = "fax"
    proven: bool = False  # the sender proved to be the account (password or SMTP AUTH)
    command: Command | None = None
    recipients: list[ListEntry] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    duplicates: int = 0
    used: list[str] = field(default_factory=list)  # attachments used, as the ack names them
    ignored: list[str] = field(default_factory=list)  # attachments not used
    pages: int | None = None
    steps: list[str] = field(default_factory=list)  # why, in order (`parse --explain`)
    from_list: bool = False  # numbers came from an attached list or a contact group
    used_parts: set[str] = field(default_factory=set, repr=False)
    used_nested: bool = field(default=False, repr=False)

    @property
    def numbers(self) -> list[str]:
        return [r.number for r in self.recipients]


@dataclass(frozen=True)
class Plan:
    """What to write. `cancel`: the commit matches the jobs and gives 95 or 96
    (`cancel_code`); `store`: message `store_ref` into the account's voice library;
    `preview`: nothing, the ack shows the fax's pages (mailgw.intake.trial)."""

    action: Literal["send", "cancel", "store", "preview"]
    code: Code
    document: Document | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    store_ref: str | None = None
    notes: tuple[Detail, ...] = ()  # said in the ack (call options used, options ignored)


@dataclass(frozen=True)
class Accept:
    plan: Plan
    found: Found

    @property
    def code(self) -> Code:
        return self.plan.code


@dataclass(frozen=True)
class Refuse:
    """A refusal carries its code; the user is told the code's sentence (one table:
    mailgw.codes.CODES) and, when there is one, the detail (mailgw.codes.DETAILS)."""

    code: Code
    detail: Detail | None
    found: Found

    def __post_init__(self) -> None:
        if is_accepted(self.code):
            raise ValueError(f"{self.code!r} accepts a mail: not a refusal")

    def sentence(self, lang: str) -> str:
        return sentence(self.code, lang)

    def explain(self, lang: str) -> str:
        """The detail in `lang`, or "" (the reply line and the ack add it to the sentence)."""
        return self.detail.text(lang) if self.detail else ""


@dataclass(frozen=True)
class Ignore:
    reason: str
    found: Found
    code: None = None


Verdict = Accept | Refuse | Ignore


@dataclass(frozen=True)
class Scheduled:
    """A scheduled job a cancel may match."""

    id: int
    ref: str | None
    numbers: frozenset[str]
