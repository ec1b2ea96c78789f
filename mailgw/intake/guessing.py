"""Guessing is slowed, owners are never shut out (DESIGN).

A From is free to forge, so nothing here turns an account off. Three defences instead:

- wrong passwords are counted per account, per client address and per network (IPv4 /24,
  IPv6 /64): past `[limits] auth_failures` in `auth_failure_window`, the reply to each
  further wrong guess is held for a delay that doubles up to `auth_delay_max` (a tarpit),
  and a client address with wrong guesses gets few DATA transactions at once;
- argon2 work is bounded: mail without proof beyond the password may cost at most
  `password_checks` checks a minute per account (`password_checks_all` for all accounts
  together); past that it gets a 4xx without any check, never a 5xx. A password verified
  before in this process costs no check and passes, unless the account is under attack;
- a mail with proof (SMTP AUTH, a DMARC-aligned pass, a client address that delivered
  this account's right password before) is checked whatever the guessers did.

The counts live in this process (per node); the known client addresses in the store
(mailgw.intake.known_clients), so every node and every restart knows them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailgw.intake.throttle import Throttle
from mailgw.ops import metrics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mailgw.ops.config import LimitsSettings

DEFERRED = "451 4.7.1 Too many password attempts for this account, please try again later"
AUTH_DEFERRED = "454 4.7.0 Too many password attempts for this account, please try again later"
CLIENT_BUSY = "451 4.7.1 Too many mails at once from your address, please try again shortly"


class Deferred(Exception):
    """A mail without proof, for an account whose password checks are spent: a 4xx."""


def _address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address (an IPv4-mapped IPv6 address as IPv4); None for anything else."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def network_of(ip: str | None) -> str | None:
    """The client's network: the /24 of an IPv4 address, the /64 of an IPv6 one (an
    IPv4-mapped IPv6 address counts as IPv4). None for anything that is not an address."""
    addr = _address(ip)
    if addr is None:
        return None
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def client_address(ip: str | None) -> str | None:
    """The address in its one written form (an IPv4-mapped IPv6 address as IPv4)."""
    addr = _address(ip)
    return None if addr is None else str(addr)


@dataclass(frozen=True)
class GuessPolicy:
    failures: int = 5  # wrong passwords per key in `window` before replies are slowed
    window: float = 600.0
    delay: float = 1.0  # the first slowed reply; doubles with each further wrong guess
    max_delay: float = 30.0
    checks: int = 30  # password checks a minute per account, for mail without proof
    checks_all: int = 120  # the same, all accounts together
    per: float = 60.0
    data_per_client: int = 2  # DATA at once from a client address that guessed wrong

    @classmethod
    def of(cls, limits: LimitsSettings) -> GuessPolicy:
        return cls(limits.auth_failures, limits.auth_failure_window, limits.auth_delay,
                   limits.auth_delay_max, limits.password_checks, limits.password_checks_all,
                   data_per_client=limits.data_per_guessing_client)


class Guard:
    """Wrong-guess counts, tarpit delays and the argon2 budget of one process."""

    def __init__(self, policy: GuessPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.policy = p = policy or GuessPolicy()
        self.clock = clock
        self.failures = Throttle(limit=p.failures, window=p.window, base_delay=p.delay,
                                 max_delay=p.max_delay, clock=clock)
        self._checks: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    @staticmethod
    def _keys(account: str | None, ip: str | None) -> list[str | None]:
        return [f"account:{account.lower()}" if account else None,
                f"ip:{client_address(ip)}" if client_address(ip) else None,
                f"net:{network_of(ip)}" if network_of(ip) else None]

    def failed(self, account: str | None, ip: str | None) -> float:
        """A wrong password for `account` from `ip`: counted, and the delay its reply is
        held for (0 below the threshold)."""
        keys = self._keys(account, ip)
        self.failures.failed(keys)
        metrics.wrong_password()
        return self.failures.delay(keys) or 0.0

    def client_delay(self, ip: str | None) -> float:
        """The delay earned by the client address and its network alone: what slows a
        client's AUTH failures and deferrals, never another client of the same account."""
        return self.failures.delay(self._keys(None, ip)) or 0.0

    def under_attack(self, account: str) -> bool:
        """The account has `failures` wrong passwords within the window."""
        key = f"account:{account.lower()}"  # as _keys writes it
        return self.failures.count([key]) >= max(self.policy.failures, 1)

    def may_check(self, account: str, proven: bool, verified: bool) -> bool:
        """Whether a password for `account` may be checked now. With proof: always. A pair
        verified before costs no argon2 and passes while nobody guesses; during an attack
        it takes a check like any other, or a right guess would be told apart (accepted)
        from a wrong one (deferred) at no cost, at any rate."""
        if proven or (verified and not self.under_attack(account)):
            return True
        return self.take_check(account)

    def suspect(self, ip: str | None) -> bool:
        """The address (or its network) gave a wrong password within the window."""
        return self.failures.count(self._keys(None, ip)) > 0

    def take_check(self, account: str) -> bool:
        """One argon2 check for a mail without proof, if the account's budget (and the
        budget of all accounts) for the last minute allows it."""
        p = self.policy
        now = self.clock()
        key = account.lower()
        with self._lock:
            mine = self._checks.get(key)
            if mine is None:
                if len(self._checks) > 100_000:  # bounded memory: forget the idle ones
                    self._checks = {k: q for k, q in self._checks.items()
                                    if q and q[-1] > now - p.per}
                mine = self._checks[key] = deque()
            for q in (mine, self._all):
                while q and q[0] <= now - p.per:
                    q.popleft()
            if len(mine) >= p.checks or len(self._all) >= p.checks_all:
                return False
            mine.append(now)
            self._all.append(now)
            return True

    def check(self, account: str, ip: str | None, proven: bool, verify: Callable[[], bool],
              *, verified: bool = False) -> tuple[bool, float]:
        """Run `verify` (the argon2 check) for `account`: (right, delay for the reply).
        Without proof and with the budget spent, raise Deferred before any check."""
        if not self.may_check(account, proven, verified):
            metrics.guess_deferred("mail")
            raise Deferred(DEFERRED)
        if verify():
            return True, 0.0
        return False, self.failed(account, ip)


class ClientSlots:
    """DATA at once per client address, for addresses with wrong guesses (others, and the
    MTA in front, keep the listener's full concurrency)."""

    def __init__(self, guard: Guard, wait: float):
        self.guard = guard
        self.wait = wait
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    def users(self, ip: str) -> int:
        """DATA transactions of `ip` in a slot or waiting for one (0 when not limited)."""
        entry = self._slots.get(ip)
        return entry[1][0] if entry is not None else 0

    @asynccontextmanager
    async def hold(self, ip: str | None) -> AsyncIterator[bool]:
        """Yields False when the client's slots stayed busy for `wait` seconds."""
        limit = self.guard.policy.data_per_client
        if ip is None or limit <= 0 or (ip not in self._slots and not self.guard.suspect(ip)):
            yield True
            return
        sem, users = self._slots.setdefault(ip, (asyncio.Semaphore(limit), [0]))
        users[0] += 1
        try:
            try:
                await asyncio.wait_for(sem.acquire(), timeout=self.wait)
            except TimeoutError:
                yield False
                return
            try:
                yield True
            finally:
                sem.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[ip]
