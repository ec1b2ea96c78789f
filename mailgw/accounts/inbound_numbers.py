"""The numbers (DIDs) whose received faxes are mailed to an account: E.164, several per
account, each owned by one account at most (`account set --inbound-number`)."""

from __future__ import annotations

import phonenumbers
from sqlalchemy.orm import Session

from mailgw.accounts.accounts import AccountError, find_by_email
from mailgw.store import received as rows


class NumberError(AccountError):
    """A refused mapping; the message says why."""


def e164(number: str, region: str = "") -> str:
    """The number in E.164 ("+33170709901"); a national form needs the account's region."""
    try:
        parsed = phonenumbers.parse(number.strip(), region.upper() or None)
    except phonenumbers.NumberParseException:
        raise NumberError(f"not a phone number: {number!r}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise NumberError(f"not a possible phone number: {number!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def change(s: Session, email: str, add: list[str], remove: list[str]) -> list[str]:
    """Map and unmap numbers; the account's numbers afterwards."""
    account = find_by_email(s, email)
    if account is None:
        raise NumberError(f"no account {email}")
    for raw in remove:
        number = e164(raw, account.region)
        if not rows.remove_number(s, account.id, number):
            raise NumberError(f"{number} is not an inbound number of {account.email}")
    for raw in add:
        number = e164(raw, account.region)
        owner = rows.owner_of(s, number)
        if owner is not None and owner.id != account.id:
            raise NumberError(f"{number} is already an inbound number of {owner.email}")
        if owner is None:
            rows.add_number(s, account.id, number)
    return rows.numbers_of(s, [account.id])[account.id]


def numbers(s: Session, account_ids: list[int]) -> dict[int, list[str]]:
    return rows.numbers_of(s, account_ids)
