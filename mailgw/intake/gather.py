"""Gathering one mail's facts for the decision: the account it names, and what proves its
sender beyond the password. Intake (SMTP and IMAP) and `mailgw parse` both gather here,
then build the same `MailFacts` and call the same `decide`.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from mailgw.inbound.mail import InboundMail
from mailgw.intake.proof_dns import Prover
from mailgw.store import Account

log = structlog.get_logger("mailgw.intake.gather")

# Finds an account by its SMTP AUTH login or a sender address (MailAccounts.get, or
# accounts.find_for_mail on a read-only store).
Find = Callable[..., Account | None]


def find_account(find: Find, mail: InboundMail, auth_login: str | None
                 ) -> tuple[Account | None, str | None]:
    """The account (by SMTP AUTH login, else From) and the sender's address."""
    if auth_login:
        account = find(login=auth_login)
        return account, account.email if account else None
    if mail.from_addr:
        account = find(sender=mail.from_addr)
        return account, mail.from_addr.lower() if account else None
    return None, None


def prove(prover: Prover, raw: bytes, mail: InboundMail, *, auth_login: str | None = None,
          mail_from: str | None = None, client_ip: str | None = None,
          known_client: bool = False) -> frozenset[str]:
    """What proves the sender beyond the password: SMTP AUTH, a client address that
    delivered this account's password before (mailgw.intake.known_clients), and a
    DMARC-aligned pass for the From domain (mailgw.intake.proof: trusted headers, or our
    own checks). A failing check is no proof, never a failed mail."""
    found = {"auth"} if auth_login else set()
    if known_client:
        found.add("known_client")
    try:
        if prover.dmarc(raw, mail.from_addr, mail_from=mail_from, client_ip=client_ip):
            found.add("dmarc")
    except Exception as exc:  # noqa: BLE001 - no proof, never a failed mail
        log.warning("proof_error", error_type=type(exc).__name__)
    return frozenset(found)
