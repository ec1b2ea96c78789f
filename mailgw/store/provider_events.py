"""The store's side of the drivers' ports (mailgw.dispatch.drivers.ports): provider events
as `provider_event` rows, and a voice delivery's sound read from its job."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mailgw.dispatch.drivers.ports import Event, Ports
from mailgw.store.db import Store
from mailgw.store.models import Delivery, Job, ProviderEvent


class StoreProviderEvents:
    """ProviderEvents on `provider_event`, unique by (driver, provider_ref, status): any
    host of the store sees what another host's callback brought."""

    def __init__(self, store: Callable[[], Store]):
        self._store = store  # opened on first use: a driver that never hears back needs none

    def record(self, driver: str, ref: str, status: str, rank: int,
               payload: Mapping[str, Any]) -> bool:
        try:
            with self._store().tx() as s:
                exists = s.scalar(select(ProviderEvent.id).where(
                    ProviderEvent.driver == driver, ProviderEvent.provider_ref == ref,
                    ProviderEvent.status == status))
                if exists is not None:
                    return False
                s.add(ProviderEvent(driver=driver, provider_ref=ref, status=status, rank=rank,
                                    payload=json.dumps(dict(payload), default=str)))
        except IntegrityError:  # the same callback, stored by another process just now
            return False
        return True

    def events(self, driver: str, ref: str) -> list[Event]:
        with self._store().read() as s:
            rows = s.execute(select(ProviderEvent.status, ProviderEvent.rank,
                                    ProviderEvent.payload)
                             .where(ProviderEvent.driver == driver,
                                    ProviderEvent.provider_ref == ref)
                             .order_by(ProviderEvent.rank.desc(), ProviderEvent.id)).all()
        out = []
        for status, rank, payload in rows:
            try:
                data = json.loads(payload) if payload else {}
            except ValueError:
                data = {}
            out.append(Event(status, rank, data if isinstance(data, dict) else {}))
        return out


class StoreMediaSource:
    """MediaSource: the converted sound kept with the delivery's job."""

    def __init__(self, store: Callable[[], Store]):
        self._store = store

    def sound(self, delivery_id: int) -> bytes | None:
        with self._store().read() as s:
            return s.scalar(select(Job.document).join(Delivery, Delivery.job_id == Job.id)
                            .where(Delivery.id == delivery_id))


def store_ports(store: Callable[[], Store]) -> Ports:
    """The drivers' ports on one store (`store` is called when a port is first used)."""
    return Ports(events=StoreProviderEvents(store), media=StoreMediaSource(store))
