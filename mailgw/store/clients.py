"""Known client addresses (mailgw.intake.known_clients): read, remembered, expired.

The write is an upsert, whose spelling differs per dialect (both say ON CONFLICT … DO
UPDATE, through each dialect's `insert`).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Engine, Table, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from mailgw.store.models import Account, KnownClient

_TABLE = cast(Table, KnownClient.__table__)


def proved(engine: Engine, address: str, network: str | None, since: datetime
           ) -> list[tuple[int, str]]:
    """(account id, account address) of the accounts the address or its network proved
    since `since`."""
    stmt = (select(KnownClient.account_id, Account.email)
            .join(Account, Account.id == KnownClient.account_id)
            .where(or_(KnownClient.address == address, KnownClient.network == network),
                   KnownClient.seen_at >= since))
    with engine.connect() as conn:
        return [(account_id, email) for account_id, email in conn.execute(stmt)]


def remember(engine: Engine, *, account_id: int, address: str, network: str,
             seen_at: datetime, expire_before: datetime | None = None) -> int:
    """Write (or refresh) one address, and with `expire_before` delete the rows last seen
    before it, in one transaction; returns how many were deleted."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_TABLE).values(account_id=account_id, address=address,
                                         network=network, seen_at=seen_at)
    stmt = stmt.on_conflict_do_update(index_elements=["account_id", "address"],
                                      set_={"seen_at": seen_at, "network": network})
    with engine.begin() as conn:
        conn.execute(stmt)
        if expire_before is None:
            return 0
        return int(conn.execute(delete(_TABLE).where(_TABLE.c.seen_at < expire_before))
                   .rowcount or 0)
