"""A call rate: at most N call starts a second (the dispatcher's and a driver's own)."""

from __future__ import annotations


class TokenBucket:
    """At most `rate` call starts a second (the driver's call rate); 0 or less = no limit.

    Pure: the caller passes a monotonic clock. `burst` calls may start at once after a
    quiet spell (default 1: calls are spread evenly, as providers count calls per second).
    """

    def __init__(self, rate: float, burst: float = 1.0, now: float = 0.0):
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = now

    @property
    def limited(self) -> bool:
        return self.rate > 0

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def allowed(self, wanted: int, now: float) -> int:
        """How many of `wanted` calls may start now (take them with `take`)."""
        if not self.limited:
            return wanted
        self._refill(now)
        return max(0, min(wanted, int(self.tokens)))

    def take(self, count: int, now: float) -> None:
        if self.limited and count:
            self._refill(now)
            self.tokens -= count

    def delay(self, now: float) -> float:
        """Seconds until the next call may start (0 when one may start now)."""
        if not self.limited:
            return 0.0
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)
