"""A result shown once on the page a form redirects to (POST, then 303, then GET): a reload
does not post the form again, and does not show the result again.

The result travels in a short-lived cookie (HttpOnly, SameSite=Lax), never in the URL, so
what a person typed (an invalid number) is not in a link, a log or the history. It is
signed with the session's own secret (its CSRF token), so a cookie planted from elsewhere is
ignored; the page that shows it clears it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mailgw.http.web import sessions

COOKIE = "mailgw_flash"
MAX_AGE = 300  # seconds: the redirect is followed at once
MOST = 3000  # bytes of the cookie's value (browsers keep 4096 per cookie)


def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode(secret: str, data: dict[str, Any]) -> str:
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_sign(secret, payload)}"


def decode(secret: str, value: str) -> dict[str, Any] | None:
    """The data of a cookie this session signed; None for anything else."""
    payload, _, sig = value.partition(".")
    if not payload or not hmac.compare_digest(sig.encode(), _sign(secret, payload).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def put(response: Response, secret: str, data: dict[str, Any], *, secure_flag: bool) -> bool:
    """Sets the cookie; False (and no cookie) when the data is too big for one."""
    value = encode(secret, data)
    if len(value) > MOST:
        return False
    sessions.set_cookie(response, COOKIE, value, secure_flag=secure_flag, max_age=MAX_AGE)
    return True


def take(request: Request, secret: str) -> dict[str, Any] | None:
    """The result waiting for this page, if any (the caller clears the cookie with `clear`)."""
    value = request.cookies.get(COOKIE)
    return decode(secret, value) if value else None


def clear(response: Response, *, secure_flag: bool) -> None:
    sessions.clear_cookie(response, COOKIE, secure_flag=secure_flag)
