"""Client addresses that proved an account: a proof beyond the password while someone guesses.

An address that delivered an account's right password (or passed its SMTP AUTH) is known
to that account, and so is its network (IPv4 /24, IPv6 /64: a dynamic address moves within
it), for `[limits] known_client_ttl` after it was last seen. The memory is in the store, so
it survives restarts and every node shares it; each node keeps what it read for a few
seconds, so a mail costs no query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mailgw.intake.guessing import client_address, network_of
from mailgw.store import Store, clients, utcnow

log = structlog.get_logger("mailgw.intake.known_clients")

REFRESH = 86400.0  # an address seen again is written at most once a day (its seen_at)
PURGE_EVERY = 3600.0  # expired rows are deleted at most once an hour per process


@dataclass(frozen=True)
class Known:
    """The accounts a client address (or its network) has proved."""

    ids: frozenset[int] = frozenset()
    logins: frozenset[str] = frozenset()  # their addresses (the SMTP AUTH logins)


class KnownClients:
    def __init__(self, store: Store, ttl: float, *, cache_ttl: float = 10.0,
                 most: int = 50_000, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = utcnow):
        self.store = store
        self.ttl = ttl
        self.cache_ttl = cache_ttl
        self.most = most
        self.clock = clock
        self.now = now
        self._seen: dict[str, tuple[float, Known]] = {}  # address -> (read at, known)
        self._written: dict[tuple[int, str], float] = {}  # (account, address) -> written at
        self._purged = -PURGE_EVERY
        self._lock = threading.Lock()

    def of(self, ip: str | None) -> Known:
        """What the address has proved (read from the store at most every `cache_ttl`
        seconds). A store that cannot be read proves nothing: the mail is then judged as
        one without proof (at worst a 4xx), never refused for it."""
        address = client_address(ip)
        if address is None:
            return Known()
        now = self.clock()
        with self._lock:
            hit = self._seen.get(address)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return hit[1]
        since = self.now() - timedelta(seconds=self.ttl)
        try:
            rows = clients.proved(self.store.read_engine, address, network_of(address), since)
        except SQLAlchemyError as exc:
            log.warning("known_clients_unreadable", error_type=type(exc).__name__)
            return Known()
        known = Known(frozenset(r[0] for r in rows), frozenset(r[1] for r in rows))
        with self._lock:
            if len(self._seen) >= self.most:
                self._seen = {}
            self._seen[address] = (now, known)
        return known

    def is_known(self, account_id: int, ip: str | None) -> bool:
        return account_id in self.of(ip).ids

    def remember(self, account_id: int, login: str, ip: str | None) -> None:
        """The address delivered the account's right password: known from now on (written
        once a day per address, so a busy sender costs no write per mail)."""
        address = client_address(ip)
        network = network_of(address)
        if address is None or network is None:
            return
        now = self.clock()
        with self._lock:
            written = self._written.get((account_id, address))
            if written is not None and now - written < REFRESH:
                return
            if len(self._written) >= self.most:
                self._written = {}
            self._written[(account_id, address)] = now
            hit = self._seen.get(address)
            if hit is not None:
                k = hit[1]
                self._seen[address] = (hit[0], Known(k.ids | {account_id},
                                                     k.logins | {login.lower()}))
            purge = now - self._purged >= PURGE_EVERY
            if purge:
                self._purged = now
        try:
            self._write(account_id, address, network, purge)
        except SQLAlchemyError as exc:  # the mail is committed; only the memory is missed
            with self._lock:
                self._written.pop((account_id, address), None)
            log.warning("known_client_not_written", error_type=type(exc).__name__)

    def _write(self, account_id: int, address: str, network: str, purge: bool) -> None:
        seen_at = self.now()
        gone = clients.remember(
            self.store.engine, account_id=account_id, address=address, network=network,
            seen_at=seen_at, expire_before=seen_at - timedelta(seconds=self.ttl) if purge else None)
        if gone:
            log.info("known_clients_expired", count=gone)
