"""Who is signed in: server-side sessions behind a cookie, and the forms' CSRF tokens.

The cookie holds a random token; the store keeps its SHA-256 (a read of the store gives no
session). Cookies are HttpOnly and SameSite=Lax, and Secure when the page came over HTTPS
or `[notify] base_url` is https (a proxy in front). Every form carries a CSRF token: the
session's own once signed in, before that a random one from a cookie of its own (double
submit). A form without the right token is refused with 403.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from mailgw.accounts.weblogin import digest, new_token
from mailgw.store import web as rows
from mailgw.store.models import Account, utcnow

COOKIE = "mailgw_session"
CSRF_COOKIE = "mailgw_csrf"
IDLE = timedelta(hours=8)  # a session not used for this long ends
LONGEST = timedelta(days=7)  # and none lives longer
PENDING = timedelta(minutes=10)  # password right, the second factor still to come
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Current:
    """The signed-in browser: its session and account (read in one short transaction)."""

    session_id: int
    csrf: str
    pending_totp: bool
    account_id: int
    email: str
    lang: str
    tz: str
    region: str
    admin: bool = False  # an operator: the admin pages (mailgw.http.web.admin_routes)


def start(s: Session, account: Account, *, pending_totp: bool) -> str:
    """A new session for the account; the token for the cookie."""
    token, hashed = new_token()
    now = utcnow()
    rows.purge_sessions(s, now)
    rows.add_session(s, token_hash=hashed, account_id=account.id,
                     csrf=secrets.token_urlsafe(24), pending_totp=pending_totp,
                     created_at=now, seen_at=now,
                     expires_at=now + (PENDING if pending_totp else IDLE))
    return token


def current(s: Session, token: str | None, now: datetime | None = None) -> Current | None:
    """The session the cookie names, if alive; its idle time starts again (at most once a
    minute, so reading pages does not write on every request)."""
    if not token:
        return None
    now = now or utcnow()
    row = rows.session_by_hash(s, digest(token), now)
    if row is None:
        return None
    if not row.pending_totp and now - row.seen_at >= TOUCH_EVERY:
        row.seen_at = now
        row.expires_at = min(now + IDLE, row.created_at + LONGEST)
    account = s.get(Account, row.account_id)
    if account is None or account.disabled:  # disabled: every session ends at once
        return None
    return Current(row.id, row.csrf, row.pending_totp, account.id, account.email,
                   account.lang, account.tz, account.region, bool(account.admin))


def promote(s: Session, session_id: int) -> None:
    """The second factor was right: the session is a full one."""
    row = rows.get_session(s, session_id)
    if row is not None:
        now = utcnow()
        row.pending_totp, row.seen_at, row.expires_at = False, now, now + IDLE


def secure(request: Request, base_url: str) -> bool:
    return request.url.scheme == "https" or base_url.startswith("https:")


def set_cookie(response: Response, name: str, value: str, *, secure_flag: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure_flag,
                        httponly=True, samesite="lax")


def clear_cookie(response: Response, name: str, *, secure_flag: bool) -> None:
    response.delete_cookie(name, path="/", secure=secure_flag, httponly=True, samesite="lax")


def anonymous_csrf(request: Request) -> tuple[str, bool]:
    """The double-submit token of a browser not signed in: (token, whether it is new and
    must be set as a cookie)."""
    found = request.cookies.get(CSRF_COOKIE, "")
    if len(found) >= 20:
        return found, False
    return secrets.token_urlsafe(24), True


def same(given: object, expected: str) -> bool:
    return (isinstance(given, str) and bool(expected)
            and hmac.compare_digest(given.encode(), expected.encode()))
