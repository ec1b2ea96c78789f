"""Passwords: argon2 hashes at rest, and the pairs this process has already verified.

The clear password only passes through `hash_password` and `verify_password`; it is never
stored, logged or printed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailgw.ops import metrics

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Constant-time check; any malformed hash counts as a mismatch."""
    metrics.password_checked()
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_VERIFIED_KEY = os.urandom(32)
_verified: OrderedDict[bytes, None] = OrderedDict()
_verified_lock = threading.Lock()


def _digest(password_hash: str, password: str) -> bytes:
    return hashlib.blake2b(password_hash.encode() + b"\0" + password.encode(),
                           key=_VERIFIED_KEY).digest()


def password_verified(password_hash: str, password: str) -> bool:
    """The pair was verified in this process before (no argon2 check needed)."""
    digest = _digest(password_hash, password)
    with _verified_lock:
        if digest in _verified:
            _verified.move_to_end(digest)
            return True
    return False


def verify_password_cached(password_hash: str, password: str) -> bool:
    """argon2 costs ~200 ms of CPU by design; a pair already verified in this process is
    remembered as a keyed digest (never the password), so a business application sending
    all day pays it once. Wrong passwords are never remembered: each costs the full check."""
    if password_verified(password_hash, password):
        return True
    digest = _digest(password_hash, password)
    if not verify_password(password_hash, password):
        return False
    with _verified_lock:
        _verified[digest] = None
        while len(_verified) > 10_000:
            _verified.popitem(last=False)
    return True
