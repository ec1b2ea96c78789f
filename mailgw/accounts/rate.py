"""Requests per API token: a token bucket per key (`[http] token_rate`, `token_burst`).

Pure: the caller passes a monotonic clock reading. `check` answers 0 (go ahead, one request
taken) or the seconds until the next request may pass: the HTTP layer's 429 and its
Retry-After. A refused request takes nothing, so a client that waits as told gets through.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class TokenRate:
    """At most `rate` requests a second per key, `burst` at once after a quiet spell; a rate
    of 0 or less means no limit."""

    def __init__(self, rate: float = 10.0, burst: float = 40.0, most: int = 100_000):
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.most = most  # keys remembered; past it the full (idle) buckets are forgotten
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key: (tokens, stamp)
        self._lock = threading.Lock()

    def check(self, key: Hashable, now: float) -> float:
        """0 when the request may pass (and it is counted), else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + max(0.0, now - stamp) * self.rate)
            if tokens >= 1.0 - 1e-9:  # a client that waited as told passes (float dust)
                if key not in self._buckets and len(self._buckets) >= self.most:
                    self._forget(now)
                self._buckets[key] = (max(0.0, tokens - 1.0), now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes no answer."""
        full = self.burst / self.rate
        self._buckets = {k: (t, s) for k, (t, s) in self._buckets.items()
                         if now - s < full}
