"""The leases held now, by holder, and handing back those of holders known to be dead.

Deliveries (`sending` under a dispatcher's lease) and outbox rows (leased by a sender, not
yet sent) both name their holder in `lease_owner`. A process that starts asks who holds
leases, decides which of those holders are dead (mailgw.ops.holders), and releases their
leases at once instead of waiting for them to run out (store.dispatch.reap does that).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import cast

from sqlalchemy import Table, select, union, update

from mailgw.dispatch import states
from mailgw.store.db import Store
from mailgw.store.dispatch import notify_queue
from mailgw.store.models import Delivery, OutboxMail, utcnow

_D, _O = (cast(Table, m.__table__) for m in (Delivery, OutboxMail))


def holders(store: Store) -> set[str]:
    """Every owner that holds a delivery in flight or an unsent outbox row, expired or not
    (an expired lease of a dead holder is handed back just as well)."""
    with store.read() as s:
        q = union(
            select(_D.c.lease_owner).where(_D.c.state == states.SENDING,
                                           _D.c.lease_owner.is_not(None)),
            select(_O.c.lease_owner).where(_O.c.lease_owner.is_not(None),
                                           _O.c.sent_at.is_(None)))
        return {owner for owner in s.scalars(q) if owner}


def release_owners(store: Store, owners: Collection[str]) -> tuple[int, int]:
    """Hand back what `owners` hold: their deliveries go back to the queue, due now, the
    attempt not counted (as the reaper does: the call is placed again under the same
    idempotency key), and their outbox rows are free to be claimed at once. Returns the
    (deliveries, outbox rows) released."""
    if not owners:
        return 0, 0
    names = sorted(owners)
    now = utcnow()
    with store.tx() as s:
        # Locked rows are skipped, in id order, as in the reaper: a dead holder locks
        # nothing, and a live one recording right now was never in `owners`.
        held = (select(_D.c.id).where(_D.c.state == states.SENDING,
                                      _D.c.lease_owner.in_(names))
                .order_by(_D.c.id).with_for_update(skip_locked=True))
        deliveries = s.connection().execute(
            update(_D).where(_D.c.id.in_(held.scalar_subquery()))
            .values(state=states.QUEUED, lease_owner=None, lease_expires_at=None,
                    next_attempt_at=now, attempts=_D.c.attempts - 1))
        mails = s.connection().execute(
            update(_O).where(_O.c.lease_owner.in_(names), _O.c.sent_at.is_(None))
            .values(lease_owner=None, lease_expires_at=None))
        n_deliveries = int(deliveries.rowcount or 0)  # type: ignore[attr-defined]
        if n_deliveries:
            notify_queue(s)
        return n_deliveries, int(mails.rowcount or 0)  # type: ignore[attr-defined]
