"""Pure state rules: how a delivery moves after a call, and what a job's outcome is.

scheduled → queued → sending → delivered | partial | failed | cancelled | expired,
with queued again (and a next_attempt_at) between retries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from mailgw.dispatch.drivers.base import (
    BUSY,
    CANCELLED,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    PARTIAL,
    PROVIDER_ERROR,
    CallResult,
)
from mailgw.ops.config_schema import RetrySettings
from mailgw.ops.config_types import RETRY_KEYS
from mailgw.ops.config_types import parse_retry_overrides as parse_retry_overrides  # callers' name
from mailgw.vocab import (  # the states and outcomes, importable from here too
    DELIVERED_ALL,
    DELIVERED_NONE,
    FINAL,
    IN_PROGRESS,
    OUTCOME_WORD,
    PARTIALLY,
    QUEUED,
    SCHEDULED,
    SENDING,
)

__all__ = ["DELIVERED_ALL", "DELIVERED_NONE", "FINAL", "IN_PROGRESS", "OUTCOME_WORD",
           "PARTIALLY", "QUEUED", "SCHEDULED", "SENDING"]


@dataclass(frozen=True)
class DeliveryFacts:
    """What the rule needs to know of a delivery, before this call's result."""

    channel: str
    attempts: int  # calls placed, this one included
    pages_sent: int  # pages delivered before this call
    pages_total: int | None
    first_attempt_at: datetime
    provider_errors: int = 0  # earlier provider errors, for the back-off


@dataclass(frozen=True)
class Step:
    state: str
    pages_sent: int  # after this call
    next_attempt_at: datetime | None = None


def with_overrides(policy: RetrySettings, overrides: str | None) -> RetrySettings:
    """The account's retry policy: [dispatch.retry] with the account's own values on top."""
    if not overrides:
        return policy
    try:
        values = json.loads(overrides)
    except ValueError:
        return policy
    known = {k: v for k, v in values.items() if k in RETRY_KEYS}
    if "max_attempts" in known:
        known["max_attempts"] = int(known["max_attempts"])
    return replace(policy, **known)


def retry_delay(result: str, policy: RetrySettings, provider_errors: int) -> float:
    if result == BUSY:
        return policy.busy
    if result == NO_ANSWER:
        return policy.no_answer
    if result in (LINE_DROPPED, PARTIAL):
        return policy.line_dropped
    if result == PROVIDER_ERROR:
        return policy.provider_error * (2 ** min(provider_errors, 10))
    return policy.line_dropped


def after_call(facts: DeliveryFacts, res: CallResult, policy: RetrySettings,
               now: datetime) -> Step:
    """The delivery's next state once a call has ended."""
    pages = facts.pages_sent + res.pages_sent
    if facts.pages_total is not None:
        pages = min(pages, facts.pages_total)
    if res.result == CANCELLED:
        return Step("cancelled", pages)
    if res.result == DELIVERED:
        complete = facts.channel != "fax" or facts.pages_total is None or (
            pages >= facts.pages_total)
        if complete:
            return Step("delivered", pages)
    reached = pages > 0 or res.result == PARTIAL
    give_up = "partial" if reached else "failed"
    if not res.retryable and res.result != DELIVERED:
        return Step(give_up, pages)
    if facts.attempts >= policy.max_attempts:
        return Step(give_up, pages)
    delay = retry_delay(res.result, policy, facts.provider_errors)
    next_at = now + timedelta(seconds=delay)
    if next_at > facts.first_attempt_at + timedelta(seconds=policy.kill_time):
        return Step("partial" if reached else "expired", pages)
    return Step(QUEUED, pages, next_at)


def job_outcome(deliveries: Iterable[tuple[str, int]]) -> str:
    """In progress · delivered to all · delivered to none · partially delivered.

    Each item is (state, pages_sent); a fax page or a played message counts as reached.
    """
    items = list(deliveries)
    if not items or any(state not in FINAL for state, _ in items):
        return IN_PROGRESS
    if all(state == "delivered" for state, _ in items):
        return DELIVERED_ALL
    if any(state in ("delivered", "partial") or pages > 0 for state, pages in items):
        return PARTIALLY
    return DELIVERED_NONE


def outcome_from_counts(total: int, unfinished: int, delivered: int, reached: int) -> str:
    """`job_outcome` from a job's counts (one aggregate query instead of every row):
    deliveries, those not final, those delivered, those that reached someone (delivered,
    partial or a page sent)."""
    if not total or unfinished:
        return IN_PROGRESS
    if delivered == total:
        return DELIVERED_ALL
    if reached:
        return PARTIALLY
    return DELIVERED_NONE


# -- a job's life: the rules the jobs service (mailgw.jobs.service) and store.jobs follow

RETRYABLE = ("failed", "expired")  # what `jobs retry` queues again
CANCEL_NOW, STOP_CALL, ALREADY_FINAL = "cancel", "stop", "final"


def cancel_action(state: str) -> str:
    """What cancelling a job does to one delivery: one not yet called is cancelled at once,
    a call in flight is asked to stop (its worker decides), a final one stays as it is."""
    if state in (SCHEDULED, QUEUED):
        return CANCEL_NOW
    if state == SENDING:
        return STOP_CALL
    return ALREADY_FINAL


def credits_each(channel: str, pages: int | None) -> int:
    """What one number of a job costs: a fax its pages (at least one), a call one."""
    return (pages or 1) if channel == "fax" else 1


def credits_refund(reserved: int, channel: str, state: str, pages_sent: int) -> int:
    """What a final delivery gives back of the credits reserved for it: everything but the
    pages that reached the recipient (fax) or the answered call (voice)."""
    used = pages_sent if channel == "fax" else (1 if state == "delivered" else 0)
    return max(reserved - used, 0)


def job_state(outcome: str, delivery_states: Iterable[str], current: str) -> str:
    """The job's state once its outcome is known: cancelled when every delivery was, done
    otherwise; unchanged while it is in progress."""
    if outcome == IN_PROGRESS:
        return current
    return "cancelled" if all(st == "cancelled" for st in delivery_states) else "done"
