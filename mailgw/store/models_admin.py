"""The operators' journal (revision 0019): one row per action taken on the admin pages or
by `mailgw account` on behalf of an operator: who, what, on which target, when. Rows are
only added, never changed; the actor's address is copied so the row outlives the account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailgw.store.models import Base, Id, UtcDateTime, utcnow


class AdminAction(Base):
    """One operator's action."""

    __tablename__ = "admin_action"
    __table_args__ = (Index("ix_admin_action_at", "at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("account.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320))  # the operator's address
    action: Mapped[str] = mapped_column(String(40))  # account_create, credits, outbox_retry …
    target: Mapped[str] = mapped_column(String(400))  # an account's address, an outbox id
    detail: Mapped[str | None] = mapped_column(Text)  # JSON: what changed
