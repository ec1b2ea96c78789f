"""What the HTTP layer asks of a bearer token: who it speaks for, and how long to hold the
reply (a wrong token) or the request (too many requests).

Wrong tokens are slowed like wrong passwords (mailgw.intake.guessing's Guard and policy):
counted per client address and per network, past `[limits] auth_failures` in the window
each further wrong token from there earns a delay that doubles up to `auth_delay_max`.
Nothing is ever shut out: a valid token is always verified and accepted, with no delay,
whatever the counts of its address — a token is 256 random bits, so a flood of wrong
ones cannot find it, and there is no budget to spend (SHA-256 costs nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mailgw.accounts import tokens
from mailgw.accounts.rate import TokenRate
from mailgw.intake.guessing import Guard, GuessPolicy

if TYPE_CHECKING:
    from mailgw.ops.config import Settings
    from mailgw.store.db import Store


class TokenGate:
    """One per process: the wrong-token counts (a Guard, shared with SMTP's when given, so
    an address guessing passwords is slowed here too) and the per-token request rate."""

    def __init__(self, store: Store, guard: Guard | None = None, rate: TokenRate | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.guard = guard or Guard(clock=clock)
        self.rate = rate or TokenRate()
        self.clock = clock

    @classmethod
    def of(cls, store: Store, settings: Settings, guard: Guard | None = None) -> TokenGate:
        """With the configured policy: `[limits]` for wrong tokens, `[http] token_rate` and
        `token_burst` for the requests of a valid one."""
        return cls(store, guard or Guard(GuessPolicy.of(settings.limits)),
                   TokenRate(settings.http.token_rate, settings.http.token_burst))

    def check(self, presented: str | None, client_ip: str | None
              ) -> tuple[tokens.Principal | None, float]:
        """(principal, 0.0) for a valid token; (None, the delay to hold the 401 for) for
        anything else, the delay counted for the client address and its network."""
        principal = tokens.verify(self.store, presented) if presented else None
        if principal is not None:
            return principal, 0.0
        return None, self.guard.failed(None, client_ip)

    def throttle(self, principal: tokens.Principal) -> float:
        """0 when the token may make this request now, else the seconds for Retry-After."""
        return self.rate.check(principal.token_id, self.clock())
