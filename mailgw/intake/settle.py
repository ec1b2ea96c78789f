"""The codes only the commit's transaction can know (83, 95/96), decided from what it read.

Pure: the commit reads the values under its lock (the balance, the scheduled jobs), calls
these, and acts on the answer. `mailgw parse` calls the same ones on what it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mailgw.codes import Code, Detail
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
