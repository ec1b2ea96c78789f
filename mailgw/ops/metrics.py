"""Prometheus metrics: counters fed by hook functions, gauges read from the store per scrape.

The hooks (`mail_decided`, `delivery_final`, `attempt_ended`, `leases_reaped`,
`outbox_result`) are cheap, never raise and never touch the store, so intake, the
dispatcher and the outbox call them after their commit. The gauges (jobs and deliveries
by state, outbox depth and age, queue lag) describe the shared store, so every node that
serves /metrics reports the same values: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailgw.codes import CODES
from mailgw.store import Store
from mailgw.store.metrics import StoreSnapshot, read_snapshot
from mailgw.store.metrics import aware_utc as aware_utc  # the HTTP routes' name for it
from mailgw.vocab import DELIVERY_STATES, FINAL_STATES, JOB_STATES

log = structlog.get_logger("mailgw.ops.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# No `*_created` series beside each counter: they double the output and nobody graphs them.
disable_created_metrics()
# Our own registry (not prometheus_client's global one, which other libraries may fill).
REGISTRY = CollectorRegistry(auto_describe=True)

MAILS_RECEIVED = Counter(
    "mailgw_mails_received", "Mails that reached a decision at intake, by reply code "
    "(code=\"ignored\" for bounces and auto-replies, which get no code)",
    ["code"], registry=REGISTRY)
MAILS_REFUSED = Counter(
    "mailgw_mails_refused", "Mails refused at intake (codes 82-94 and 96), by reply code",
    ["code"], registry=REGISTRY)
DELIVERIES = Counter(
    "mailgw_deliveries", "Deliveries that reached a final state, by that state "
    "(delivered, partial, failed, cancelled, expired)", ["outcome"], registry=REGISTRY)
ATTEMPT_DURATION = Histogram(
    "mailgw_attempt_duration_seconds", "Wall-clock time of one call placed by a driver, "
    "by attempt result", ["result"], registry=REGISTRY,
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf")))
LEASE_REAPS = Counter(
    "mailgw_lease_reaps", "Deliveries handed back to the queue because their worker's lease "
    "expired (a worker died or stalled)", registry=REGISTRY)
OUTBOX_RESULTS = Counter(
    "mailgw_outbox_mails", "Outbox send tries, by result (sent, failed = will retry, dead = "
    "given up)", ["result"], registry=REGISTRY)
SMTP_OPEN = Gauge("mailgw_smtp_connections", "SMTP sessions open in this process",
                  registry=REGISTRY)
SMTP_STRESS = Gauge("mailgw_smtp_stress", "1 while the SMTP listener is near its connection "
                    "limit (idle and slow sessions get the short stress_timeout)",
                    registry=REGISTRY)
SMTP_REFUSED = Counter(
    "mailgw_smtp_connections_refused", "SMTP connections refused with 421 at connect, by "
    "reason (full, per_client, rate)", ["reason"], registry=REGISTRY)
SMTP_TIMEOUTS = Counter(
    "mailgw_smtp_timeouts", "SMTP sessions closed for silence or slowness, by phase "
    "(greeting, command, data) and stress (yes, no)", ["phase", "stress"], registry=REGISTRY)

PASSWORD_CHECKS = Counter(
    "mailgw_password_checks", "argon2 password checks made (mail passwords and SMTP AUTH; a "
    "pair already verified in this process is not checked again)", registry=REGISTRY)
WRONG_PASSWORDS = Counter(
    "mailgw_wrong_passwords", "Wrong passwords (mail and SMTP AUTH): guesses, or typos",
    registry=REGISTRY)
GUESSES_DEFERRED = Counter(
    "mailgw_guesses_deferred", "Mails (4xx) and SMTP AUTH attempts (454) without proof turned "
    "away unchecked, because their account's password checks for the minute were spent",
    ["via"], registry=REGISTRY)


ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, resident memory, open fds
PlatformCollector(registry=REGISTRY)  # python_info

# Labels known in advance are created at import, so a fresh process exports zeros instead
# of nothing (rate() and absent() behave).
for _code in CODES:
    MAILS_RECEIVED.labels(code=str(_code))
    if not CODES[_code].accepted:
        MAILS_REFUSED.labels(code=str(_code))
MAILS_RECEIVED.labels(code="ignored")
for _state in FINAL_STATES:
    DELIVERIES.labels(outcome=_state)
for _result in ("sent", "failed", "dead"):
    OUTBOX_RESULTS.labels(result=_result)
for _reason in ("full", "per_client", "rate"):
    SMTP_REFUSED.labels(reason=_reason)
for _via in ("mail", "auth"):
    GUESSES_DEFERRED.labels(via=_via)


# -- hooks: the lead calls these from intake, the dispatcher and the outbox ---------------

def mail_decided(code: int | None, ignored: bool = False) -> None:
    """Intake reached a decision: `code` 80-96, or None/ignored for a dropped auto-reply."""
    try:
        if ignored or code is None:
            MAILS_RECEIVED.labels(code="ignored").inc()
            return
        MAILS_RECEIVED.labels(code=str(code)).inc()
        rc = CODES.get(code)
        if rc is not None and not rc.accepted:
            MAILS_REFUSED.labels(code=str(code)).inc()
    except Exception:  # noqa: BLE001 - metrics never break the mail path
        log.exception("metrics_hook_failed", hook="mail_decided")


def delivery_final(state: str) -> None:
    """A delivery reached a final state (delivered, partial, failed, cancelled, expired)."""
    try:
        DELIVERIES.labels(outcome=state).inc()
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="delivery_final")


def attempt_ended(result: str, seconds: float) -> None:
    """A driver call ended with `result` (delivered, busy, …) after `seconds` of wall time."""
    try:
        ATTEMPT_DURATION.labels(result=result).observe(max(float(seconds), 0.0))
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="attempt_ended")


def leases_reaped(n: int) -> None:
    """The reaper handed `n` deliveries back to the queue."""
    try:
        if n > 0:
            LEASE_REAPS.inc(n)
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="leases_reaped")


def outbox_result(result: str, n: int = 1) -> None:
    """The outbox tried to hand `n` mails to the smarthost: sent, failed (retry) or dead."""
    try:
        if n > 0:
            OUTBOX_RESULTS.labels(result=result).inc(n)
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="outbox_result")


def smtp_connections(delta: int) -> None:
    """An SMTP session was admitted (+1) or ended (-1)."""
    SMTP_OPEN.inc(delta)


def smtp_stress(on: bool) -> None:
    SMTP_STRESS.set(1 if on else 0)


def smtp_refused(reason: str) -> None:
    SMTP_REFUSED.labels(reason=reason).inc()


def smtp_timeout(phase: str, stressed: bool) -> None:
    SMTP_TIMEOUTS.labels(phase=phase, stress="yes" if stressed else "no").inc()


def password_checked() -> None:
    """One argon2 check ran (right or wrong)."""
    try:
        PASSWORD_CHECKS.inc()
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="password_checked")


def wrong_password() -> None:
    try:
        WRONG_PASSWORDS.inc()
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="wrong_password")


def guess_deferred(via: str) -> None:
    """A mail or an AUTH attempt without proof was turned away unchecked (budget spent)."""
    try:
        GUESSES_DEFERRED.labels(via=via).inc()
    except Exception:  # noqa: BLE001
        log.exception("metrics_hook_failed", hook="guess_deferred")


# -- gauges from the store (mailgw.store.metrics), read at scrape time --------------------

class SnapshotCollector(Collector):
    """Turns one snapshot (or its absence: the store did not answer) into gauges."""

    def __init__(self, snap: StoreSnapshot | None, scrape_seconds: float):
        self.snap = snap
        self.scrape_seconds = scrape_seconds

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mailgw_store_up", "1 when the store answered this scrape's "
                               "queries within the timeout")
        up.add_metric([], 1.0 if self.snap is not None else 0.0)
        yield up
        took = GaugeMetricFamily("mailgw_store_scrape_seconds", "Time taken by the store "
                                 "queries of this scrape")
        took.add_metric([], self.scrape_seconds)
        yield took
        snap = self.snap
        if snap is None:
            return
        jobs = GaugeMetricFamily("mailgw_jobs", "Jobs in the store, by state", labels=["state"])
        for state in sorted(set(JOB_STATES) | set(snap.jobs)):
            jobs.add_metric([state], snap.jobs.get(state, 0))
        yield jobs
        dels = GaugeMetricFamily("mailgw_deliveries_by_state", "Deliveries in the store, by "
                                 "state", labels=["state"])
        for state in sorted(set(DELIVERY_STATES) | set(snap.deliveries)):
            dels.add_metric([state], snap.deliveries.get(state, 0))
        yield dels
        for name, doc, value in (
            ("mailgw_outbox_depth", "Acks and notices waiting for the smarthost (not sent, "
             "not dead)", snap.outbox_unsent),
            ("mailgw_outbox_oldest_unsent_age_seconds", "Age of the oldest mail waiting in "
             "the outbox (0 when empty)", snap.outbox_oldest_unsent_age),
            ("mailgw_outbox_dead", "Outbox mails given up after notify.give_up",
             snap.outbox_dead),
            ("mailgw_queue_lag_seconds", "Now minus the due time of the oldest due "
             "delivery not yet claimed (0 when none is waiting)", snap.queue_lag),
        ):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g


async def snapshot(store: Store, timeout: float) -> tuple[StoreSnapshot | None, float]:
    """Read the store in a thread; None when it fails or does not answer in time."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        snap: StoreSnapshot | None = await asyncio.wait_for(
            asyncio.to_thread(read_snapshot, store, timeout), timeout)
    except Exception as exc:  # noqa: BLE001 - a scrape reports the store as down instead
        log.warning("metrics_store_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        snap = None
    return snap, loop.time() - started


async def render(store: Store | None, timeout: float = 5.0) -> bytes:
    """The /metrics body: the process's counters, then the store's gauges."""
    body = generate_latest(REGISTRY)
    if store is None:
        return body
    snap, took = await snapshot(store, timeout)
    per_scrape = CollectorRegistry(auto_describe=False)
    per_scrape.register(SnapshotCollector(snap, took))
    return body + generate_latest(per_scrape)
