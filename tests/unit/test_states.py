"""Pure rules: the simulator's outcome table, a delivery's next state, a job's outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from mailgw.dispatch import states
from mailgw.dispatch.drivers.base import CallRequest, CallResult
from mailgw.dispatch.drivers.simulator import SimulatorDriver, SimulatorSettings, outcome
from mailgw.ops.config import RetrySettings

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
POLICY = RetrySettings(busy=180, no_answer=300, line_dropped=60, provider_error=30,
                       max_attempts=5, kill_time=3 * 3600)


def call(number: str, attempt: int = 1, first_page: int = 1, pages: int = 3,
         channel: str = "fax") -> CallResult:
    return outcome(CallRequest(1, attempt, channel, number, "k", pages_total=pages,
                               first_page=first_page, sound_seconds=10.0))


@pytest.mark.parametrize("last, attempt, result, pages_sent, retryable", [
    ("00", 1, "delivered", 3, False),
    ("89", 1, "delivered", 3, False),
    ("90", 1, "busy", 0, True),
    ("90", 2, "delivered", 3, False),
    ("91", 2, "no_answer", 0, True),
    ("91", 3, "delivered", 3, False),
    ("92", 1, "line_dropped", 1, True),
    ("93", 1, "not_fax", 0, False),
    ("94", 4, "busy", 0, True),
    ("95", 4, "no_answer", 0, True),
    ("96", 1, "line_dropped", 1, True),
    ("96", 2, "line_dropped", 0, True),
    ("97", 1, "not_in_service", 0, False),
    ("98", 1, "delivered", 3, False),
    ("99", 1, "provider_error", 0, True),
    ("99", 2, "delivered", 3, False),
])
def test_simulator_fax_table(last: str, attempt: int, result: str, pages_sent: int,
                             retryable: bool) -> None:
    r = call(f"+331707099{last}", attempt)
    assert (r.result, r.pages_sent, r.retryable) == (result, pages_sent, retryable)
    if result == "delivered":
        assert r.csid == "+33 1 70 70 99 " + last


def test_simulator_resumes_from_first_page_not_delivered() -> None:
    r = call("+33170709992", attempt=2, first_page=2, pages=3)
    assert (r.result, r.pages_sent) == ("delivered", 2)


def test_simulator_slow_case_is_ten_times_longer() -> None:
    assert call("+33170709998").duration == pytest.approx(10 * call("+33170709900").duration)


def test_simulator_records_the_time_the_call_really_took() -> None:
    """At time_scale 0.001 a 3-page fax (105 simulated seconds) is recorded as 0.105 s:
    the notice then says what happened, not the unscaled time."""
    req = CallRequest(1, 1, "fax", "+33170709901", "k", pages_total=3)
    done = asyncio.run(SimulatorDriver(SimulatorSettings(time_scale=0.001)).place_call(req))
    assert outcome(req).duration == pytest.approx(105.0)
    assert done.duration == pytest.approx(0.105)
    assert (done.result, done.pages_sent) == ("delivered", 3)


def test_simulator_voice_answering_machine() -> None:
    r = call("+33612345693", channel="voice")
    assert r.result == "delivered" and "answering machine" in (r.detail or "")


def facts(attempts: int = 1, pages_sent: int = 0, pages_total: int | None = 3,
          started: datetime = T0, channel: str = "fax", provider_errors: int = 0
          ) -> states.DeliveryFacts:
    return states.DeliveryFacts(channel, attempts, pages_sent, pages_total, started,
                                provider_errors)


@pytest.mark.parametrize("f, res, state, pages, delay", [
    (facts(), CallResult("delivered", pages_sent=3), "delivered", 3, None),
    (facts(), CallResult("busy", retryable=True), "queued", 0, 180),
    (facts(), CallResult("no_answer", retryable=True), "queued", 0, 300),
    (facts(), CallResult("line_dropped", pages_sent=1, retryable=True), "queued", 1, 60),
    (facts(provider_errors=2), CallResult("provider_error", retryable=True), "queued", 0, 120),
    (facts(), CallResult("not_fax"), "failed", 0, None),
    (facts(), CallResult("not_in_service"), "failed", 0, None),
    (facts(attempts=5), CallResult("busy", retryable=True), "failed", 0, None),
    (facts(attempts=5, pages_sent=1), CallResult("line_dropped", retryable=True), "partial", 1,
     None),
    (facts(attempts=2, pages_sent=1), CallResult("delivered", pages_sent=2), "delivered", 3,
     None),
    (facts(started=T0 - timedelta(hours=3)), CallResult("busy", retryable=True), "expired", 0,
     None),
    (facts(), CallResult("cancelled"), "cancelled", 0, None),
    (facts(channel="voice", pages_total=None), CallResult("delivered"), "delivered", 0, None),
])
def test_after_call(f: states.DeliveryFacts, res: CallResult, state: str, pages: int,
                    delay: float | None) -> None:
    step = states.after_call(f, res, POLICY, T0)
    assert (step.state, step.pages_sent) == (state, pages)
    if delay is None:
        assert step.next_attempt_at is None
    else:
        assert step.next_attempt_at == T0 + timedelta(seconds=delay)


@pytest.mark.parametrize("deliveries, outcome_", [
    ([("delivered", 3), ("queued", 0)], "in_progress"),
    ([("delivered", 3), ("delivered", 3)], "delivered_all"),
    ([("failed", 0), ("expired", 0)], "delivered_none"),
    ([("delivered", 3), ("failed", 0)], "partial"),
    ([("partial", 1)], "partial"),
    ([("cancelled", 0)], "delivered_none"),
    ([], "in_progress"),
])
def test_job_outcome(deliveries: list[tuple[str, int]], outcome_: str) -> None:
    assert states.job_outcome(deliveries) == outcome_
    assert states.OUTCOME_WORD[outcome_] in ("N/A", "Success", "Partial success", "Error")


def test_account_retry_overrides() -> None:
    import json

    over = states.parse_retry_overrides("busy=2m, max_attempts=3,kill_time=6h")
    assert over == {"busy": 120.0, "max_attempts": 3, "kill_time": 21600.0}
    policy = states.with_overrides(POLICY, json.dumps(over))
    assert (policy.busy, policy.max_attempts, policy.kill_time, policy.no_answer) == (
        120.0, 3, 21600.0, 300)
    assert states.with_overrides(POLICY, None) is POLICY
    for bad in ("speed=2", "busy", "max_attempts=0", "busy=soon"):
        with pytest.raises(ValueError):
            states.parse_retry_overrides(bad)
