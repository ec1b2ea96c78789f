"""API tokens: per account, several, named, scoped; shown once, kept as a hash, revocable.

The interface the HTTP API relies on (mailgw.http.api_v1): `verify` turns a presented
bearer token into a `Principal`, or None. The gateway password is never a token.
"""

from __future__ import annotations

from dataclasses import dataclass

SCOPES = ("jobs:write", "jobs:read", "library", "admin")


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    token_id: int
    name: str
    account_id: int
    account_email: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes
