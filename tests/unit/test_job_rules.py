"""The jobs service's decisions, as pure rules (mailgw.dispatch.states): what a cancel does to
each delivery, what a number costs, what a final delivery gives back, and the job's state
once its outcome is known. The store and the service only apply them."""

from __future__ import annotations

import pytest

from mailgw.dispatch import states


@pytest.mark.parametrize("state, action", [
    ("scheduled", states.CANCEL_NOW),  # not called yet: cancelled at once, with its notice
    ("queued", states.CANCEL_NOW),  # waiting for a retry or a line: the same
    ("sending", states.STOP_CALL),  # a call in flight: its worker stops it, then records
    ("delivered", states.ALREADY_FINAL),
    ("partial", states.ALREADY_FINAL),
    ("failed", states.ALREADY_FINAL),
    ("cancelled", states.ALREADY_FINAL),
    ("expired", states.ALREADY_FINAL),
])
def test_cancel_action(state: str, action: str) -> None:
    assert states.cancel_action(state) == action


def test_every_final_state_is_left_alone_by_a_cancel() -> None:
    assert {states.cancel_action(s) for s in states.FINAL} == {states.ALREADY_FINAL}


def test_only_failed_and_expired_deliveries_are_retried() -> None:
    assert set(states.RETRYABLE) == {"failed", "expired"}
    assert set(states.RETRYABLE) <= states.FINAL  # a retry never touches live deliveries


@pytest.mark.parametrize("channel, pages, each", [
    ("fax", 3, 3), ("fax", 1, 1), ("fax", None, 1), ("fax", 0, 1),  # a page at least
    ("voice", None, 1), ("voice", 5, 1),  # a call costs one, whatever its length
])
def test_credits_each(channel: str, pages: int | None, each: int) -> None:
    assert states.credits_each(channel, pages) == each


@pytest.mark.parametrize("reserved, channel, state, pages_sent, refund", [
    (3, "fax", "delivered", 3, 0),  # every page reached: all charged
    (3, "fax", "partial", 1, 2),  # one page reached: two back
    (3, "fax", "failed", 0, 3),
    (3, "fax", "cancelled", 2, 1),  # pages sent before the hang-up are charged
    (3, "fax", "delivered", 5, 0),  # never below zero
    (1, "voice", "delivered", 0, 0),  # an answered call is charged
    (1, "voice", "partial", 0, 1),  # a hang-up during the message is not
    (1, "voice", "failed", 0, 1),
    (0, "fax", "failed", 0, 0),  # an account without a limit reserved nothing
])
def test_credits_refund(reserved: int, channel: str, state: str, pages_sent: int,
                        refund: int) -> None:
    assert states.credits_refund(reserved, channel, state, pages_sent) == refund


@pytest.mark.parametrize("outcome, delivery_states, current, state", [
    (states.IN_PROGRESS, ["delivered", "queued"], "active", "active"),
    (states.IN_PROGRESS, ["scheduled"], "scheduled", "scheduled"),
    (states.DELIVERED_ALL, ["delivered", "delivered"], "active", "done"),
    (states.DELIVERED_NONE, ["cancelled", "cancelled"], "scheduled", "cancelled"),
    (states.DELIVERED_NONE, ["cancelled", "failed"], "active", "done"),
    (states.PARTIALLY, ["cancelled", "delivered"], "active", "done"),
])
def test_job_state(outcome: str, delivery_states: list[str], current: str, state: str) -> None:
    assert states.job_state(outcome, delivery_states, current) == state
