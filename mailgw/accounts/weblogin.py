"""The web space's sign-in rules: a web password distinct from the gateway password, set
through a one-time invitation link; an optional TOTP second factor (pyotp) with recovery
codes. The rows are read and written by mailgw.store.web; the HTTP side is mailgw.http.web.

Tokens (invitations, recovery codes) are long random strings kept as SHA-256 hashes: a
stolen store gives no usable link or code. The clear web password only passes through
`set_from_invite` and `check_password`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy.orm import Session

from mailgw.accounts.accounts import AccountError, normalize_address
from mailgw.accounts.passwords import hash_password, verify_password
from mailgw.store import accounts as account_rows
from mailgw.store import web as rows
from mailgw.store.models import Account, utcnow

INVITE_TTL = timedelta(days=7)
MIN_LENGTH = 10
MAX_LENGTH = 200
RECOVERY_CODES = 10
ISSUER = "mailgw"
# A hash to verify against when the account is unknown, so a wrong address costs the same
# argon2 work as a wrong password (no telling which accounts exist by timing).
_DUMMY = hash_password(secrets.token_urlsafe(16))


class WebPasswordError(AccountError):
    """A refused web password or link; `key` names the sentence the web space shows."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key = key


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(the token for the link or cookie, its hash for the store)."""
    token = secrets.token_urlsafe(32)
    return token, digest(token)


def check_rules(password: str, gateway_hash: str) -> None:
    """A web password: long enough, and not the gateway password (the gateway password
    travels in every Subject; the web space must not open with it)."""
    if len(password) < MIN_LENGTH:
        raise WebPasswordError("too_short", f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WebPasswordError("too_long", f"at most {MAX_LENGTH} characters")
    if verify_password(gateway_hash, password):
        raise WebPasswordError("same_as_gateway",
                               "the web password must differ from the gateway password")


def invite(s: Session, email: str, now: datetime | None = None) -> tuple[Account, str]:
    """A new invitation for the account: (the account, the token to put in the link)."""
    account = account_rows.by_email(s, normalize_address(email))
    if account is None:
        raise AccountError(f"no account {email}")
    token, hashed = new_token()
    rows.add_invite(s, account.id, hashed, (now or utcnow()) + INVITE_TTL)
    return account, token


def invited(s: Session, token: str) -> Account | None:
    """The account a live invitation token is for."""
    found = rows.live_invite(s, digest(token), utcnow())
    return s.get(Account, found.account_id) if found else None


def set_from_invite(s: Session, token: str, password: str) -> Account:
    """Set the web password from an invitation: the link is spent, and every session of the
    account ends (whoever had it signed in must sign in again)."""
    now = utcnow()
    found = rows.live_invite(s, digest(token), now)
    account = s.get(Account, found.account_id) if found else None
    if account is None:
        raise WebPasswordError("invite_invalid", "this link is not valid any more")
    check_rules(password, account.password_hash)
    login = rows.login(s, account.id, create=True)
    assert login is not None
    login.password_hash = hash_password(password)
    login.changed_at = now
    rows.close_invites(s, account.id, now)
    rows.end_sessions(s, account.id)
    return account


def check_password(s: Session, email: str, password: str) -> Account | None:
    """The account, when the web password is right (argon2, the same work when wrong);
    a disabled account is refused as a wrong password is (its existence is not told)."""
    account = account_rows.by_email(s, normalize_address(email))
    login = rows.login(s, account.id) if account else None
    stored = login.password_hash if login and login.password_hash else None
    right = verify_password(stored or _DUMMY, password) and stored is not None
    return account if right and account is not None and not account.disabled else None


# -- the second factor -----------------------------------------------------------------------

def totp_on(s: Session, account_id: int) -> bool:
    login = rows.login(s, account_id)
    return bool(login and login.totp_enabled)


def start_totp(s: Session, account: Account) -> tuple[str, str]:
    """A new secret to enrol (not yet required): (secret, otpauth URI for an app)."""
    login = rows.login(s, account.id, create=True)
    assert login is not None
    if login.totp_enabled:
        raise AccountError("the second factor is already on")
    login.totp_secret = pyotp.random_base32()
    uri = pyotp.TOTP(login.totp_secret).provisioning_uri(name=account.email, issuer_name=ISSUER)
    return login.totp_secret, uri


def pending_secret(s: Session, account: Account) -> tuple[str, str] | None:
    login = rows.login(s, account.id)
    if login is None or login.totp_enabled or not login.totp_secret:
        return None
    uri = pyotp.TOTP(login.totp_secret).provisioning_uri(name=account.email, issuer_name=ISSUER)
    return login.totp_secret, uri


def _step(totp: pyotp.TOTP, code: str, at: float) -> int | None:
    """The time step the code belongs to (this one, or one either side), or None."""
    code = "".join(code.split())
    for drift in (0, -1, 1):
        step = totp.timecode(datetime.fromtimestamp(at, UTC)) + drift
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def confirm_totp(s: Session, account_id: int, code: str) -> list[str]:
    """Turn the second factor on with a first right code: the recovery codes, shown once."""
    login = rows.login(s, account_id)
    if login is None or not login.totp_secret or login.totp_enabled:
        raise AccountError("start the set-up first")
    step = _step(pyotp.TOTP(login.totp_secret), code, time.time())
    if step is None:
        raise AccountError("wrong code")
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    login.totp_enabled, login.totp_last_step = True, step
    login.recovery_codes = json.dumps([digest(c) for c in codes])
    return codes


def disable_totp(s: Session, account_id: int) -> None:
    login = rows.login(s, account_id)
    if login is not None:
        login.totp_enabled, login.totp_secret = False, None
        login.totp_last_step, login.recovery_codes = None, None


def second_factor(s: Session, account_id: int, code: str) -> bool:
    """A TOTP code (each used once), or a recovery code (then spent)."""
    login = rows.login(s, account_id)
    if login is None or not login.totp_enabled or not login.totp_secret:
        return False
    code = code.strip()
    if "-" in code:  # a recovery code
        left = json.loads(login.recovery_codes or "[]")
        hashed = digest(code.lower())
        if hashed in left:
            left.remove(hashed)
            login.recovery_codes = json.dumps(left)
            return True
        return False
    step = _step(pyotp.TOTP(login.totp_secret), code, time.time())
    if step is None or (login.totp_last_step is not None and step <= login.totp_last_step):
        return False
    login.totp_last_step = step
    return True


def recovery_left(s: Session, account_id: int) -> int:
    login = rows.login(s, account_id)
    return len(json.loads(login.recovery_codes or "[]")) if login else 0
