"""What an operator may do to accounts and the outbox, each action journaled: a structlog
event `admin_action` and a row of `admin_action` (who, what, on which target, when), in the
transaction that makes the change, so the journal never claims what did not happen.

The web space's admin pages (mailgw.http.web.admin_routes) and `mailgw account` both call
here. A disabled account is refused everywhere it could act: its mail is answered as an
unknown sender's (82, mailgw.store.accounts), its API tokens stop verifying, its web sign-in
fails and its sessions end. Jobs it had already submitted still go out.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session

from mailgw.accounts import accounts
from mailgw.accounts.accounts import AccountError, AccountView
from mailgw.store import admin as rows
from mailgw.store import web as web_rows
from mailgw.store.models import Account

log = structlog.get_logger("mailgw.accounts.operators")


@dataclass(frozen=True)
class Operator:
    """Who acts: an admin account of the web space, or the command line (no account)."""

    email: str
    account_id: int | None = None

    @classmethod
    def command_line(cls) -> Operator:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = "?"
        return cls(f"cli:{user}")


def journal(s: Session, who: Operator, action: str, target: str, **detail: object) -> None:
    rows.record(s, actor_id=who.account_id, actor=who.email, action=action, target=target,
                detail=detail or None)
    log.info("admin_action", actor=who.email, action=action, target=target, **detail)


def _account(s: Session, account_id: int) -> Account:
    account = rows.account(s, account_id)
    if account is None:
        raise AccountError(f"no account {account_id}")
    return account


def create(s: Session, who: Operator, email: str, password: str, *, region: str, lang: str,
           tz: str, credits: int | None, admin: bool = False) -> AccountView:
    view = accounts.add_account(s, email, password, region=region, lang=lang, tz=tz,
                                credits=credits)
    if admin:
        _account(s, view.id).admin = True
    journal(s, who, "account_create", view.email, region=view.region, lang=view.lang,
            tz=view.tz, credits="unlimited" if credits is None else credits, admin=admin)
    return view


def set_flags(s: Session, who: Operator, email: str, *, admin: bool | None = None,
              disabled: bool | None = None) -> Account:
    """Make an account an operator or not, disable or enable it (`mailgw account set`)."""
    account = accounts.find_by_email(s, email)
    if account is None:
        raise AccountError(f"no account {email}")
    if admin is not None and admin != account.admin:
        account.admin = admin
        journal(s, who, "admin_on" if admin else "admin_off", account.email)
    if disabled is not None:
        set_disabled(s, who, account.id, disabled)
    return account


def set_disabled(s: Session, who: Operator, account_id: int, disabled: bool) -> Account:
    account = _account(s, account_id)
    if disabled and who.account_id == account.id:
        raise AccountError("an operator cannot disable their own account")
    if disabled != account.disabled:
        account.disabled = disabled
        if disabled:
            web_rows.end_sessions(s, account.id)
        s.flush()
        journal(s, who, "account_disable" if disabled else "account_enable", account.email)
    return account


def change_credits(s: Session, who: Operator, account_id: int, text: str) -> int | None:
    """N, +N, -N or 'unlimited' (mailgw.accounts.accounts.update_account's rules)."""
    account = _account(s, account_id)
    before = account.credits
    view = accounts.update_account(s, account.email, credits=text)
    journal(s, who, "credits", account.email, before=_credits(before),
            after=_credits(view.credits), asked=text.strip())
    return view.credits


def change_limits(s: Session, who: Operator, account_id: int, *, window: str,
                  retry: str) -> Account:
    """The sending window and the retry policy ('none' / 'default' clear them)."""
    account = _account(s, account_id)
    before = {"window": account.send_window or "none", "retry": retry_text(account)}
    accounts.update_account(s, account.email, window=window, retry=retry)
    after = {"window": account.send_window or "none", "retry": retry_text(account)}
    if after != before:
        journal(s, who, "limits", account.email, before=before, after=after)
    return account


def invited(s: Session, who: Operator, account_id: int, sent_to: str) -> None:
    """Journal an invitation (mailgw.notify.invite.send_invite queued it)."""
    journal(s, who, "invite", _account(s, account_id).email, to=sent_to)


def retry_mail(s: Session, who: Operator, mail_id: int) -> bool:
    mail = rows.dead_mail(s, mail_id)
    if mail is None or not rows.revive(s, mail_id):
        return False
    journal(s, who, "outbox_retry", f"outbox {mail_id}", kind=mail.kind, to=mail.rcpt_to)
    return True


def drop_mail(s: Session, who: Operator, mail_id: int) -> bool:
    mail = rows.dead_mail(s, mail_id)
    if mail is None or not rows.drop(s, mail_id):
        return False
    journal(s, who, "outbox_drop", f"outbox {mail_id}", kind=mail.kind, to=mail.rcpt_to)
    return True


def retry_text(account: Account) -> str:
    """The account's retry policy as it is typed (`busy=120s,max_attempts=3`), or default."""
    if not account.retry_policy:
        return "default"
    policy = json.loads(account.retry_policy)
    return ",".join(f"{k}={int(v)}" if k == "max_attempts" else f"{k}={float(v):g}s"
                    for k, v in policy.items())


def _credits(value: int | None) -> str | int:
    return "unlimited" if value is None else value
