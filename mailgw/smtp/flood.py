"""Connection floods: per-client caps and the listener's stress state, as Postfix does it.

Postfix's anvil caps each client's concurrent connections and connection rate, and its
smtpd drops `smtpd_timeout` from 300 s to 10 s "under stress" (all its processes busy).
Here a `Connections` object counts one listener's sessions and answers two questions:
may this new connection in (`admit`), and should this session get the short timeouts
(`stressed`)? A session is under stress when the listener holds more than
`threshold` of its `limit`, when its own client holds more than `threshold` of the
per-client cap, or, for a session in DATA, when every DATA slot is taken. When stress
begins, the sessions it concerns are told (`stress_began`), so running sessions are
shortened too, not only new ones. And when the listener is full, a newcomer takes the place
of the session silent longest, once that one has been silent `evict_after` seconds: a
flood that keeps the listener full cannot keep out a client who talks. The timers
themselves live in the protocol (smtp_timers.StressTimers); this module knows no SMTP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from mailgw.intake.guessing import ClientSlots
from mailgw.ops import metrics

log = structlog.get_logger("mailgw.smtp")

RATE_WINDOW = 60.0  # seconds: `rate` is new connections per client address per minute
MAX_KEYS = 10_000  # client addresses remembered for the rate before the idle ones are dropped
LOG_EVERY = 1.0  # seconds between two log lines about refused connections (a flood is counted)

FULL = b"421 4.7.0 Too many connections, please try again later\r\n"
PER_CLIENT = b"421 4.7.0 Too many connections from your address, please try again later\r\n"
RATE = (b"421 4.7.0 Too many new connections from your address in the last minute, "
        b"please try again later\r\n")
REFUSALS = {"full": FULL, "per_client": PER_CLIENT, "rate": RATE}


class Member(Protocol):
    """What Connections needs from a session."""

    transport: Any

    def stress_began(self) -> None: ...

    def in_data(self) -> bool: ...

    def idle_for(self) -> float: ...  # seconds the client has been silent (0 while we work)

    def evict(self) -> None: ...  # close it now, with a 421, to make room


def client_key(ip: str | None) -> str:
    """The unit the per-client caps count: the address, or its /64 for IPv6 (one host
    usually has a whole /64, as Postfix's `smtpd_client_ipv6_prefix_length`)."""
    if not ip:
        return "?"
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def stress_levels(limit: int, threshold: float) -> tuple[int, int]:
    """(on, off): stress begins once `on` sessions are open (more than `threshold` of
    `limit`) and ends once no more than `off` are (a tenth of `limit` lower, so a count
    hovering at the threshold does not flap)."""
    on = min(limit, math.floor(limit * threshold) + 1)
    return max(on, 1), max(on - 1 - limit // 10, 0)


def parse_networks(items: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses or networks (`192.0.2.7`, `10.0.0.0/8`, `::1`); ValueError names a bad one."""
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


@dataclass
class _Client:
    members: set[Member] = field(default_factory=set)
    window_start: float = 0.0  # the rate's window (Postfix's anvil: a fixed minute per client)
    admitted: int = 0  # connections admitted in that window (refused ones cost us nothing)


class Connections:
    """Open sessions of one listener, its stress state, and how many may be in DATA at once
    (each mail is held in memory until intake has it, so this bounds the listener's memory)."""

    def __init__(self, limit: int, max_data: int = 8, *, per_client: int = 0, rate: int = 0,
                 threshold: float = 0.8, exceptions: Iterable[str] = (),
                 evict_after: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 clients: ClientSlots | None = None):
        self.limit = limit
        self.clients = clients  # DATA at once per address that guessed wrong (guessing.py)
        self.per_client = per_client
        self.rate = rate
        self.threshold = threshold
        self.exceptions = parse_networks(exceptions)
        self.evict_after = evict_after  # 0: a full listener refuses newcomers, evicts no one
        self.clock = clock
        self.protocols: set[Member] = set()
        self.data_slots = asyncio.Semaphore(max(max_data, 1))
        self.under_stress = False
        self.stress_since = 0.0
        self._on, self._off = stress_levels(limit, threshold)
        self._client_on = stress_levels(per_client, threshold)[0] if per_client > 0 else 0
        self._clients: dict[str, _Client] = {}
        self._client_of: dict[Member, _Client] = {}
        self._refused: dict[str, int] = {}
        self._logged_at = -LOG_EVERY

    @property
    def open(self) -> int:
        return len(self.protocols)

    def exempt(self, ip: str | None) -> bool:
        if not self.exceptions or not ip:
            return False
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # an IPv4 client of a [::] listener
        return any(addr in net for net in self.exceptions)

    def admit(self, member: Member, ip: str | None) -> bytes | None:
        """None when `member` may in (it is then counted); else the 421 to send and close."""
        now = self.clock()
        if self.open >= self.limit and not self._evict():
            return self._refuse("full", ip, now)
        client: _Client | None = None
        if (self.per_client > 0 or self.rate > 0) and not self.exempt(ip):
            key = client_key(ip)
            client = self._clients.get(key)
            if client is None:
                self._forget(now)
                client = self._clients[key] = _Client(window_start=now)
            if now - client.window_start >= RATE_WINDOW:
                client.window_start, client.admitted = now, 0
            if self.per_client > 0 and len(client.members) >= self.per_client:
                return self._refuse("per_client", ip, now)
            if self.rate > 0 and client.admitted >= self.rate:
                return self._refuse("rate", ip, now)
            client.admitted += 1
            client.members.add(member)
            self._client_of[member] = client
        self.protocols.add(member)
        metrics.smtp_connections(1)
        if not self.under_stress and self.open >= self._on:
            self.under_stress, self.stress_since = True, now
            metrics.smtp_stress(True)
            log.warning("smtp_stress_began", open=self.open, limit=self.limit)
            self._tell(self.protocols)
        elif client is not None and self._client_on and len(client.members) == self._client_on:
            log.info("smtp_client_stress", peer=ip, open=len(client.members))
            self._tell(client.members)
        return None

    def release(self, member: Member) -> None:
        if member not in self.protocols:
            return
        self.protocols.discard(member)
        metrics.smtp_connections(-1)
        client = self._client_of.pop(member, None)
        if client is not None:
            client.members.discard(member)
        if self.under_stress and self.open <= self._off:
            self.under_stress = False
            metrics.smtp_stress(False)
            log.info("smtp_stress_ended", open=self.open,
                     seconds=round(self.clock() - self.stress_since, 1))

    def stressed(self, member: Member, in_data: bool = False) -> bool:
        """Whether `member` gets the short timeouts now."""
        if self.under_stress or (in_data and self.data_slots.locked()):
            return True
        client = self._client_of.get(member)
        return client is not None and bool(self._client_on) and \
            len(client.members) >= self._client_on

    def data_pressure(self) -> None:
        """Every DATA slot is taken and a client waits for one: the sessions in DATA are held
        to the stress rule (a trickling DATA must not keep a slot for minutes)."""
        self._tell([m for m in self.protocols if m.in_data()])

    def close_all(self) -> None:
        """On shutdown: end the sessions still open (a client mid-DATA will retry)."""
        for proto in list(self.protocols):
            if proto.transport is not None:
                proto.transport.close()

    # -- helpers -----------------------------------------------------------------------------

    def _evict(self) -> bool:
        """Full: make room by closing the session silent longest, if silent long enough."""
        if self.evict_after <= 0 or not self.protocols:
            return False
        victim = max(self.protocols, key=lambda m: m.idle_for())
        if victim.idle_for() < self.evict_after:
            return False
        self.release(victim)
        victim.evict()
        return True

    @staticmethod
    def _tell(members: Iterable[Member]) -> None:
        for member in list(members):
            member.stress_began()

    def _refuse(self, reason: str, ip: str | None, now: float) -> bytes:
        metrics.smtp_refused(reason)
        self._refused[reason] = self._refused.get(reason, 0) + 1
        if now - self._logged_at >= LOG_EVERY:  # one line a second, with the count
            log.warning("smtp_connections_refused", peer=ip, open=self.open, limit=self.limit,
                        **{f"refused_{k}": n for k, n in self._refused.items()})
            self._refused.clear()
            self._logged_at = now
        return REFUSALS[reason]

    def _forget(self, now: float) -> None:
        """Bounded memory under a flood from many addresses: drop the clients with no open
        session whose window is over, and if that is not enough, every one with none."""
        if len(self._clients) < MAX_KEYS:
            return
        for key, c in list(self._clients.items()):
            if not c.members and now - c.window_start >= RATE_WINDOW:
                del self._clients[key]
        if len(self._clients) >= MAX_KEYS:
            for key, c in list(self._clients.items()):
                if not c.members:
                    del self._clients[key]
