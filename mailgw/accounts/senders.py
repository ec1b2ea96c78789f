"""The allow-list of an account: the addresses whose mails may send for it (with its
gateway password). Adding is `mailgw account allow` (mailgw.accounts.accounts.allow_sender);
here the list as shown, and taking an address off it. The account's own address stays."""

from __future__ import annotations

from sqlalchemy.orm import Session

from mailgw.accounts.accounts import AccountError, normalize_address
from mailgw.store import accounts as rows
from mailgw.store.models import Account


def allowed(account: Account) -> list[str]:
    """The account's own address first, then the others in order."""
    others = sorted(s.address for s in account.senders if s.address != account.email)
    return [account.email, *others]


def disallow(s: Session, account: Account, address: str) -> bool:
    """Mails from `address` no longer send for the account; False when they did not."""
    address = normalize_address(address)
    if address == account.email:
        raise AccountError("the account's own address stays on its allow-list")
    removed = rows.remove_sender(s, account.id, address)
    s.expire(account, ["senders"])
    return removed
