"""The codes only the commit's transaction can know (83, 95/96), decided from what it read.

Pure: the commit (mailgw.intake.writer) reads the values under its lock (the balance, the
scheduled jobs), calls these, and acts on the answer: `action` says what to write, `charge`
whether the credits cover the job (83), `cancel_matches` and `cancel_code` which jobs a
cancel names (95/96). `mailgw parse` calls the same ones on what it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailgw.codes import Code, Detail, is_accepted
from mailgw.dispatch.states import credits_each
from mailgw.intake.verdict import Found, Refuse, Scheduled


def cancel_matches(jobs: Iterable[Scheduled], numbers: Sequence[str], ref: str | None
                   ) -> list[int]:
    """The jobs a cancel names (all scheduled at its time): the same numbers, or with no
    numbers, the same ref."""
    if numbers:
        wanted = frozenset(numbers)
        return [j.id for j in jobs if j.numbers == wanted]
    return [j.id for j in jobs if ref and j.ref == ref]


def cancel_code(cancelled: Sequence[int]) -> Code:
    return Code.CANCELLED if cancelled else Code.NOTHING_TO_CANCEL


def credit_refusal(left: int | None, cost: int) -> Refuse | None:
    """83 when the account's balance (None: no limit) does not cover the job."""
    if left is None or left >= cost:
        return None
    return Refuse(Code.NO_CREDIT, Detail.of("credit_short", needed=cost, left=left), Found())


Action = Literal["cancel", "store", "job", "none"]


def action(*, has_account: bool, proven: bool, code: int, cancel: bool, store_ref: str | None,
           has_document: bool, has_command: bool, preview: bool = False) -> Action:
    """What the commit does for a decided mail: cancel the jobs it names (a proven sender's
    accepted cancel), store a library message, create a job, or nothing (a refusal, or a
    preview: no job, no credit, only its ack)."""
    if not has_account or preview:
        return "none"
    if proven and has_command and cancel and is_accepted(code):
        return "cancel"
    if store_ref and code == Code.SENDING and has_document:
        return "store"
    if is_accepted(code) and has_command:
        return "job"
    return "none"


def units(channel: str, pages: int | None) -> int:
    """Credits per number: a fax's pages (at least one), one call for voice (the jobs'
    rule, dispatch.states.credits_each: a retry reserves the same)."""
    return credits_each(channel, pages)


def cost(channel: str, recipients: int, pages: int | None) -> int:
    """What a job costs: its numbers times `units`."""
    return recipients * units(channel, pages)


@dataclass(frozen=True)
class Charge:
    """`credit_refusal`'s answer with the balance after it: `refusal` (83) and nothing
    debited, or `left` the balance once `cost` is debited (None: no limit)."""

    refusal: Refuse | None
    left: int | None
    debit: int = 0  # what to take from the account


def charge(left: int | None, job_cost: int) -> Charge:
    """Take `job_cost` from a balance read under the transaction; never below zero."""
    if left is None:
        return Charge(None, None)
    refusal = credit_refusal(left, job_cost)
    if refusal is not None:
        return Charge(refusal, left)
    return Charge(None, left - job_cost, job_cost)
