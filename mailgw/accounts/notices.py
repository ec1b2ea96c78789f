"""An account's notices: every delivery (`all`), only the failed ones (`failures`), or one
summary per job (`summary`); and the summary threshold, the count of numbers from which a
job gets one summary instead of a notice per number. Unset, the gateway's `[notify] on` and
`summary_from` apply (mailgw.notify.messages reads both through `effective`)."""

from __future__ import annotations

from dataclasses import dataclass

from mailgw.accounts.accounts import AccountError
from mailgw.store.models import Account

MODES = ("all", "failures", "summary")
MOST = 100_000  # a threshold above any list a mail may carry (limits.max_list_lines)


@dataclass(frozen=True)
class Notices:
    mode: str  # all | failures | summary
    summary_from: int  # 0: no count rule (lists and groups still get a summary)


def effective(account: Account, mode: str, summary_from: int) -> Notices:
    """The account's setting where it has one, else the gateway's."""
    return Notices(account.notice_mode or mode,
                   summary_from if account.summary_from is None else account.summary_from)


def check_mode(value: str) -> str | None:
    """'all', 'failures' or 'summary'; '' or 'default': the gateway's (None)."""
    value = value.strip().lower()
    if value in ("", "default"):
        return None
    if value not in MODES:
        raise AccountError(f"notices: expected one of {', '.join(MODES)} or default")
    return value


def check_threshold(value: str) -> int | None:
    """A count of numbers (0 to MOST); '' or 'default': the gateway's (None)."""
    value = value.strip().lower()
    if value in ("", "default"):
        return None
    if not value.isdigit() or int(value) > MOST:
        raise AccountError(f"summary threshold: expected a number from 0 to {MOST}")
    return int(value)


def set_notices(account: Account, mode: str, threshold: str) -> None:
    """Both checked before either is written (the caller's transaction keeps them)."""
    new_mode, new_from = check_mode(mode), check_threshold(threshold)
    account.notice_mode, account.summary_from = new_mode, new_from
