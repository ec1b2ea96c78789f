"""Failures counted per key (an account, a client address, a network) over a sliding window.

Past `limit` failures in `window` seconds a key earns a delay that doubles with each further
failure, up to `max_delay` (a tarpit). It only counts and tells: what to hold back, and
never whom to shut out, is mailgw.intake.guessing's business.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable


class Throttle:
    def __init__(self, limit: int = 5, window: float = 600.0, base_delay: float = 1.0,
                 max_delay: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000):
        self.limit = limit
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def failed(self, keys: Iterable[str | None]) -> None:
        now = self.clock()
        with self._lock:
            if len(self._failures) >= self.max_keys:  # bounded memory under a flood
                for key in list(self._failures)[: self.max_keys // 10]:
                    del self._failures[key]
            for k in keys:
                if k:
                    self._recent(k, now)
                    self._failures.setdefault(k, deque()).append(now)

    def count(self, keys: Iterable[str | None]) -> int:
        """The most failures any of the keys has within the window."""
        now = self.clock()
        with self._lock:
            return max((len(self._recent(k, now)) for k in keys if k), default=0)

    def delay(self, keys: Iterable[str | None]) -> float | None:
        """None below `limit` failures for every key; else how long to hold the reply."""
        worst = self.count(keys)
        if worst < max(self.limit, 1):
            return None
        return min(self.base_delay * 2 ** min(worst - self.limit, 40), self.max_delay)
