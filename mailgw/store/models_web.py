"""The web space's tables (revision 0018): a web password per account, invitations to set
it, and server-side sessions. Secrets are kept as hashes: argon2 for the password, SHA-256
for the invitation and session tokens and the recovery codes (they are long random strings,
so a fast hash is enough). The TOTP secret must be read back to check a code, so it is kept
as it is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from mailgw.store.models import Base, Id, UtcDateTime, utcnow


class WebLogin(Base):
    """The web password (not the gateway password) and the optional second factor."""

    __tablename__ = "web_login"
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"),
                                            primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # None: not set yet
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # base32; set up or on
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is used once
    recovery_codes: Mapped[str | None] = mapped_column(Text)  # JSON: SHA-256 hex, unused ones
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebInvite(Base):
    """A one-time link to set the web password (`mailgw account invite`)."""

    __tablename__ = "web_invite"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebSession(Base):
    """A signed-in browser: the cookie holds the token, the store its hash. `pending_totp`:
    the password was right, the second factor is still to come."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"),
                                            index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # the forms' token, bound to the session
    pending_totp: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
