"""The idempotency rows: the answer a mail got, keyed by (account, Message-ID), so that the
same mail again gets the first answer and no second job (DESIGN: idempotent ingestion)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.orm import Session

from mailgw.store.models import ProcessedMessage

# Built once (it runs for every batch).
_INSERT = insert(cast(Table, ProcessedMessage.__table__))


def insert_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    conn.execute(_INSERT, rows)


def find(s: Session, account_id: int, key: str) -> ProcessedMessage | None:
    return s.scalar(select(ProcessedMessage).where(
        ProcessedMessage.account_id == account_id, ProcessedMessage.message_id == key))
