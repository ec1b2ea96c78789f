"""The store's tables: one vocabulary with the code, the CLI and the docs.

Times are stored as timezone-aware UTC (`UtcDateTime`), so SQLite and PostgreSQL answer alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    types,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


Id = BigInteger().with_variant(Integer, "sqlite")


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(2))
    lang: Mapped[str] = mapped_column(String(5))
    tz: Mapped[str] = mapped_column(String(64))
    credits: Mapped[int | None] = mapped_column(Integer)  # None = no credit limit
    send_window: Mapped[str | None] = mapped_column(String(100))  # e.g. "08:00-20:00 Mon-Sat"
    voice_options: Mapped[str | None] = mapped_column(Text)  # JSON: default call options
    notice_address: Mapped[str | None] = mapped_column(String(320))  # where notices go too
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    retry_policy: Mapped[str | None] = mapped_column(Text)  # JSON: overrides [dispatch.retry]
    # What proves the sender beyond the password: password | password+dmarc | password+auth
    require: Mapped[str] = mapped_column(String(20), default="password",
                                         server_default="password")
    # The fax quality (documents.quality): normal | high | best; a mail's `quality:` overrides it
    quality: Mapped[str] = mapped_column(String(10), default="high", server_default="high")
    # A cover page and a header line on its faxes (documents.cover_options); a mail's
    # `cover:` / `header:` lines override them
    cover: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    header_line: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Its own fax number (E.164), the only one a `test: yes` mail dials (intake.trial)
    test_number: Mapped[str | None] = mapped_column(String(32))
    # An operator: the web space's admin pages (mailgw.http.web.admin_routes)
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Refused everywhere as an unknown account: mail (82), API tokens, web sign-in
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Its notices: all | failures | summary, and the count of numbers from which a job gets
    # one summary (0: only lists and groups); None: the gateway's [notify] on / summary_from
    notice_mode: Mapped[str | None] = mapped_column(String(10))
    summary_from: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    senders: Mapped[list[SenderAddress]] = relationship(back_populates="account")


class SenderAddress(Base):
    """An address allowed to send for an account (its own address is one of them)."""

    __tablename__ = "sender_address"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    account: Mapped[Account] = relationship(back_populates="senders")


class ContactGroup(Base):
    """A named list of numbers an account sends to as `@name`."""

    __tablename__ = "contact_group"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    members: Mapped[list[GroupMember]] = relationship(
        back_populates="group", order_by="GroupMember.id", cascade="all, delete-orphan")


class GroupMember(Base):
    __tablename__ = "group_member"
    __table_args__ = (UniqueConstraint("group_id", "number"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("contact_group.id", ondelete="CASCADE"),
                                          index=True)
    number: Mapped[str] = mapped_column(String(20))  # E.164
    columns: Mapped[str | None] = mapped_column(Text)  # JSON
    group: Mapped[ContactGroup] = relationship(back_populates="members")


class Job(Base):
    """One accepted mail: a document or sound for one or more numbers."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    channel: Mapped[str] = mapped_column(String(8))  # fax | voice
    sender: Mapped[str] = mapped_column(String(320))  # the proven address acks and notices go to
    message_id: Mapped[str | None] = mapped_column(String(998))
    state: Mapped[str] = mapped_column(String(16))  # scheduled | active | done | cancelled
    outcome: Mapped[str] = mapped_column(String(16), default="in_progress")
    subject: Mapped[str | None] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(String(200))
    comment: Mapped[str | None] = mapped_column(Text)
    send_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the deferred time, if any
    pages: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)  # voice: the sound's seconds
    document_name: Mapped[str | None] = mapped_column(String(400))
    document_type: Mapped[str | None] = mapped_column(String(100))
    document: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    options: Mapped[str | None] = mapped_column(Text)  # JSON: voice call options (accounts.voice)
    # Numbers from an attached list or a contact group: a campaign, answered by one summary
    # (notify.summary_from), however few numbers it has.
    numbers_from_list: Mapped[bool] = mapped_column(Boolean, default=False,
                                                    server_default=false())
    # How many numbers (deliveries), written at intake so a notice need not count them;
    # None for jobs taken before revision 0008.
    recipient_count: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="job", order_by="Delivery.id")
    account: Mapped[Account] = relationship()


class VoiceMessage(Base):
    """A recorded message of an account's library, named by its ref (`pass:::REF:` + sound,
    or `mailgw voice add`); the audio is stored converted to the drivers' format."""

    __tablename__ = "voice_message"
    __table_args__ = (UniqueConstraint("account_id", "ref"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(String(40))
    duration: Mapped[float] = mapped_column(Float)  # seconds
    audio: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))  # WAV
    source_name: Mapped[str | None] = mapped_column(String(400))  # the file it came from
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CallerId(Base):
    """A number an account has proved it owns: the only numbers a voice call may show."""

    __tablename__ = "caller_id"
    __table_args__ = (UniqueConstraint("account_id", "number"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(20))  # E.164
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Delivery(Base):
    """One number of a job; the unit the dispatcher claims."""

    __tablename__ = "delivery"
    __table_args__ = (
        # The claim query's index: due rows first, whatever the queue's length.
        Index("ix_delivery_due", "state", "next_attempt_at"),
        Index("ix_delivery_lease", "state", "lease_expires_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(20))  # E.164
    state: Mapped[str] = mapped_column(String(16))
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pages_sent: Mapped[int] = mapped_column(Integer, default=0)
    pages_total: Mapped[int | None] = mapped_column(Integer)
    csid: Mapped[str | None] = mapped_column(String(40))
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    columns: Mapped[str | None] = mapped_column(Text)  # JSON: the list's own columns
    credits_reserved: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    job: Mapped[Job] = relationship(back_populates="deliveries")
    attempt_rows: Mapped[list[Attempt]] = relationship(
        back_populates="delivery", order_by="Attempt.id")


class Attempt(Base):
    """One call placed by a driver, whatever came of it."""

    __tablename__ = "attempt"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    driver: Mapped[str] = mapped_column(String(40))
    provider_ref: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(20))
    pages_sent: Mapped[int] = mapped_column(Integer, default=0)
    pages_total: Mapped[int | None] = mapped_column(Integer)
    first_page: Mapped[int] = mapped_column(Integer, default=1)
    csid: Mapped[str | None] = mapped_column(String(40))
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    error_class: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_text: Mapped[str | None] = mapped_column(Text)
    delivery: Mapped[Delivery] = relationship(back_populates="attempt_rows")


class OutboxMail(Base):
    """A rendered mail waiting for the smarthost; written in the transaction that causes it."""

    __tablename__ = "outbox_mail"
    __table_args__ = (Index("ix_outbox_due", "sent_at", "dead_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # ack | notice | summary
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), unique=True)
    mail_from: Mapped[str] = mapped_column(String(320))  # envelope sender ('' = <>)
    rcpt_to: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    body: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class ProcessedMessage(Base):
    """The idempotency key: the same mail from the same account is answered, never run twice."""

    __tablename__ = "processed_message"
    __table_args__ = (UniqueConstraint("account_id", "message_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(String(998))
    code: Mapped[int] = mapped_column(Integer)
    reply: Mapped[str] = mapped_column(Text)  # the SMTP reply given the first time
    job_ids: Mapped[str] = mapped_column(String(400), default="")  # comma-separated
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    via_imap: Mapped[bool] = mapped_column(Boolean, default=False)


class ProviderEvent(Base):
    """What a cloud provider said about one call (a callback, or a status poll).

    Several callbacks may say the same thing (providers retry): the first one of each
    (driver, provider_ref, status) is kept. `rank` orders statuses, so an "in progress"
    that arrives after "completed" never hides it; the final answer is the highest rank.
    """

    __tablename__ = "provider_event"
    __table_args__ = (UniqueConstraint("driver", "provider_ref", "status"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    driver: Mapped[str] = mapped_column(String(40))
    provider_ref: Mapped[str] = mapped_column(String(200))  # the provider's call or fax id
    status: Mapped[str] = mapped_column(String(60))
    rank: Mapped[int] = mapped_column(Integer)  # 100 and more: final
    payload: Mapped[str | None] = mapped_column(Text)  # JSON: the facts, never a credential
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class KnownClient(Base):
    """A client address that delivered an account's right password (or passed its SMTP
    AUTH): a proof for its later mail, while guessers are slowed (mailgw.intake.known_clients).
    Forgotten `[limits] known_client_ttl` after it was last seen."""

    __tablename__ = "known_client"
    __table_args__ = (UniqueConstraint("account_id", "address"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(45), index=True)  # as intake.guessing writes it
    network: Mapped[str] = mapped_column(String(49), index=True)  # its /24 or /64
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class InboundNumber(Base):
    """A number (DID, E.164) whose received faxes are mailed to one account."""

    __tablename__ = "inbound_number"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # E.164, "+33170709901"
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"),
                                            index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReceivedFax(Base):
    """A received fax already turned into a mail: (source, name) is unique, so a restart
    or a second host polling the same fax server never mails it twice. Written in the
    transaction that queues the mail (mailgw.notify.received)."""

    __tablename__ = "received_fax"
    __table_args__ = (UniqueConstraint("source", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))  # "hylafax:host:port", "sinch"
    name: Mapped[str] = mapped_column(String(200))  # "recvq/fax00001.tif", a provider's id
    called: Mapped[str] = mapped_column(String(40))
    caller: Mapped[str] = mapped_column(String(40))
    csid: Mapped[str] = mapped_column(String(40))
    pages: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id",
                                                              ondelete="SET NULL"))
    rcpt_to: Mapped[str] = mapped_column(String(320))  # "" = nobody to mail: logged, kept
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiToken(Base):
    """An API token of an account (mailgw.accounts.tokens): named, scoped, revocable. The
    secret is never stored: `hash` is its SHA-256, `prefix` its public start, shown in lists
    and used to find the row."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("account_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(200))  # comma-separated, sorted
    hash: Mapped[str] = mapped_column(String(64))  # hex SHA-256 of the whole token
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # "mgw_" + 8 characters
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # to the minute
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
