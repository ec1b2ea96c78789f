"""Address routing: which of our addresses a recipient is, and the numbers it carries.

Pure. The SMTP edge asks it at RCPT (refuse what we do not serve, keep one channel per
transaction), and the decision asks it for the channel and the address form
(`+33…@domain`), so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailgw.intake.verdict import Channel, Policy
from mailgw.recipients import normalize_number


def channel_of(rcpt: str, policy: Policy) -> Channel | None:
    """fax | voice for an address we serve, None for anything else (refused at RCPT)."""
    addr = rcpt.strip().lower()
    if addr == policy.fax_address:
        return "fax"
    if addr == policy.voice_address:
        return "voice"
    local, at, domain = addr.rpartition("@")
    if at and domain == policy.domain and looks_like_number(local):
        return "fax"
    return None


def looks_like_number(local: str) -> bool:
    """A local part that may be a number (6 to 17 digits, with + . - between them): the
    address form is worth accepting at RCPT; whether it is valid is decided later."""
    stripped = local.replace("+", "").replace(".", "").replace("-", "")
    return stripped.isdigit() and 6 <= len(stripped) <= 17


def address_numbers(rcpts: Iterable[str], region: str, policy: Policy
                    ) -> tuple[list[str], list[str]]:
    """The numbers of `+33…@domain` recipients (E.164), and those that are not valid."""
    good: list[str] = []
    bad: list[str] = []
    for rcpt in rcpts:
        addr = rcpt.strip().lower()
        if addr in (policy.fax_address, policy.voice_address):
            continue
        local = addr.rpartition("@")[0]
        number = normalize_number(local, region)
        if number is None:
            bad.append(local)
        elif number not in good:
            good.append(number)
    return good, bad
