"""The dispatcher loop: claim due deliveries, place calls, record results, keep leases alive.

At-least-once: a delivery is `sending` only under a lease; a worker that dies stops its
heartbeat, the reaper hands the delivery back, and another worker claims it again.
Leases are store.dispatch's SQL; what a call's end does to its job (retry, finish, the
notice) is the jobs service's (mailgw.jobs.service).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from mailgw.accounts import voice
from mailgw.dispatch.drivers.base import CANCELLED, CallRequest, CallResult, Driver
from mailgw.dispatch.drivers.base import TIMEOUT as RESULT_TIMEOUT
from mailgw.dispatch.drivers.rate import TokenBucket
from mailgw.dispatch.faxdoc import FaxMaker
from mailgw.dispatch.states import with_overrides
from mailgw.documents.quality import of_options as quality_of
from mailgw.idle import until_woken
from mailgw.jobs.service import Finished, Jobs
from mailgw.ops import metrics
from mailgw.ops.config import RetrySettings, Settings
from mailgw.ops.config_types import parse_retry_overrides
from mailgw.store import Store, utcnow
from mailgw.store import dispatch as leases
from mailgw.store.dispatch import Claim

log = structlog.get_logger("mailgw.dispatch")
Prepared = dict[int, tuple[bytes | None, dict[str, str]]]  # by job: document, options


class Dispatcher:
    def __init__(self, store: Store, settings: Settings, driver: Driver, jobs: Jobs,
                 *, owner: str, on_outbox: asyncio.Event | None = None):
        self.store = store
        self.settings = settings
        self.driver = driver
        self.jobs = jobs  # records the calls' ends: retries, finishes, notices
        self.owner = owner
        self.lines = min(driver.lines, settings.dispatch.workers) or 1
        self.lease = settings.dispatch.lease_seconds
        self.inflight: dict[int, asyncio.Task[None]] = {}
        self.wakeup = asyncio.Event()
        self.on_outbox = on_outbox
        self.cancelling: set[int] = set()
        # [dispatch.retry] with the driver's own retry on top (validated by check-config)
        own: dict[str, Any] = dict(parse_retry_overrides(driver.retry))
        self.driver_policy = replace(settings.dispatch.retry, **own)
        self.calls: dict[int, asyncio.Future[CallResult]] = {}  # the driver's, by delivery
        # ended calls waiting to be recorded together (one transaction for a batch)
        self.to_record: list[tuple[Finished, asyncio.Future[str | None]]] = []
        # calls that have ended and wait for their record: their line is free for the next
        # claim (they stay in `inflight`, so the heartbeat and drain still cover them)
        self.ended: set[int] = set()
        # what a job's calls need (the fax document; the voice sound and options), read once
        # for a claimed batch, in the claim's thread, and kept for the next numbers of the job
        self.prepared: OrderedDict[int, tuple[bytes | None, dict[str, str]]] = OrderedDict()
        self.recorder: asyncio.Task[None] | None = None
        # the driver's call rate (calls started a second); 0 = no limit
        self.pace = TokenBucket(driver.calls_per_second, now=time.monotonic())
        self.faxes = FaxMaker(store, settings, driver)  # cover pages and header lines

    def wake(self) -> None:
        self.wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        reaper = asyncio.create_task(self._reap_loop(stop))
        beat = asyncio.create_task(self._heartbeat_loop(stop))
        listener = None
        if self.store.is_postgres:
            listener = asyncio.get_running_loop().run_in_executor(
                None, self._listen, asyncio.get_running_loop(), stop)
        try:
            while not stop.is_set():
                try:
                    claimed = await self._claim()
                except Exception:  # noqa: BLE001 - a database hiccup must not end dispatch
                    log.exception("claim_failed")
                    claimed = 0
                if claimed:
                    continue
                await until_woken(stop, self.wakeup, self.settings.dispatch.poll_interval)
        finally:
            reaper.cancel()
            beat.cancel()
            if listener is not None:
                listener.cancel()

    def _listen(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """PostgreSQL LISTEN in a thread: a NOTIFY from intake or a reaper wakes us at once.
        Only a hint: the poll loop finds due work without it."""
        import psycopg  # late import: only a PostgreSQL store listens (SQLite never loads libpq)

        url = self.store.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {leases.NOTIFY_CHANNEL}")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            loop.call_soon_threadsafe(self.wake)
            except Exception as exc:  # noqa: BLE001 - a lost LISTEN only costs latency
                log.warning("listen_failed", error=type(exc).__name__)
                time.sleep(2.0)

    async def drain(self, grace: float) -> None:
        """Let calls in flight finish for `grace` seconds, then hand the rest back."""
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=grace)
        # calls still on the line; those that have ended are being recorded, not handed back
        left = [i for i in self.inflight if i not in self.ended]
        if left:  # a driver that can leave calls running does so now
            self.driver.detach()
        for task in list(self.inflight.values()):
            task.cancel()
        if self.recorder is not None and not self.recorder.done():
            await asyncio.wait({self.recorder}, timeout=grace)
        if left:
            released = await asyncio.to_thread(self.jobs.release, self.owner, left)
            log.info("leases_released", count=released)

    async def _claim(self) -> int:
        # a line is free once its call has ended; at most one batch per line waits for its
        # record (a slow store must slow the claims down, not pile leases up)
        free = min(self.lines - len(self.inflight) + len(self.ended),
                   2 * self.lines - len(self.inflight))
        if free <= 0:
            return 0
        free = self.pace.allowed(free, time.monotonic())
        if free <= 0:  # over the call rate: wake up when the next call may start
            asyncio.get_running_loop().call_later(self.pace.delay(time.monotonic()), self.wake)
            return 0
        claims, prepared = await asyncio.to_thread(self._claim_batch, free, set(self.prepared))
        self._keep(prepared)
        self.pace.take(len(claims), time.monotonic())
        for c in claims:
            task = asyncio.create_task(self._call(c))
            self.inflight[c.delivery_id] = task
            task.add_done_callback(functools.partial(self._done, c.delivery_id))
        return len(claims)

    def _claim_batch(self, limit: int, known: set[int]) -> tuple[list[Claim], Prepared]:
        """In a thread: claim, then read what the new jobs' calls need (one query for the
        fax documents of the batch), so no call waits for its own read."""
        claims = leases.claim(self.store, self.owner, limit, self.lease)
        new = {c.job_id: c.channel for c in claims if c.job_id not in known}
        fax = sorted(j for j, ch in new.items() if ch == "fax")
        prepared: Prepared = dict(leases.load_documents(self.store, fax))
        for job_id, channel in new.items():
            if channel == "voice":
                prepared[job_id] = voice.load_call(self.store, job_id)
        return claims, prepared

    def _keep(self, prepared: Prepared) -> None:
        for job_id, value in prepared.items():
            self.prepared[job_id] = value
            self.prepared.move_to_end(job_id)
        while len(self.prepared) > self.lines + 8:  # the jobs of the calls in flight, and a few
            self.prepared.popitem(last=False)

    def _done(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self.inflight.pop(delivery_id, None)
        self.ended.discard(delivery_id)
        self.wakeup.set()  # a line is free again

    async def _call(self, c: Claim) -> None:
        bound = log.bind(job_id=c.job_id, message_id=c.message_id, delivery_id=c.delivery_id,
                         attempt=c.attempt)
        document: bytes | None = None
        options: dict[str, str] = {}
        prepared = self.prepared.get(c.job_id)
        if prepared is not None:
            self.prepared.move_to_end(c.job_id)
            document, options = prepared
        elif c.channel == "fax":
            document, options = await asyncio.to_thread(leases.load_document, self.store,
                                                         c.job_id)
        elif c.channel == "voice":  # the converted sound (WAV) and the call options
            document, options = await asyncio.to_thread(voice.load_call, self.store, c.job_id)
        failed = None
        if c.channel == "fax" and any(self.faxes.wanted(options)):
            document, failed = await asyncio.to_thread(self.faxes.make, c.delivery_id,
                                                       document, options)
        request = CallRequest(delivery_id=c.delivery_id, attempt=c.attempt, channel=c.channel,
                              number=c.number, idempotency_key=c.idempotency_key,
                              document=document, pages_total=c.pages_total,
                              first_page=c.first_page, sound_seconds=c.sound_seconds,
                              options=options if c.channel == "voice" else {},
                              quality=quality_of(options) if c.channel == "fax" else "high")
        started = utcnow()
        bound.info("call_started", driver=self.driver.name, first_page=c.first_page)
        result = failed or await self._place(c, request, started)
        if result is None:
            raise asyncio.CancelledError  # shutdown: drain() hands the lease back
        ended = utcnow()
        self.ended.add(c.delivery_id)  # the line is free: the next claim need not wait
        self.wakeup.set()
        state = await self._record(Finished(
            c, result, started, ended, self._policy(c, options)))
        bound.info("call_ended", result=result.result, pages_sent=result.pages_sent,
                   csid=result.csid, state=state)
        self.cancelling.discard(c.delivery_id)
        metrics.attempt_ended(result.result, (ended - started).total_seconds())
        if state is not None and self.on_outbox is not None:
            self.on_outbox.set()

    async def _place(self, c: Claim, request: CallRequest, started: datetime
                     ) -> CallResult | None:
        """The driver's call, as its own task: an operator's cancel cancels that task, and a
        driver that answers the cancel with what it had done (pages sent before the hang-up)
        is heard; `asyncio.wait_for` would drop that answer. None: we are shutting down."""
        if c.delivery_id in self.cancelling:  # cancelled before the call was placed
            return CallResult(CANCELLED, error_text="cancelled before the call")
        call = asyncio.ensure_future(self.driver.place_call(request))
        self.calls[c.delivery_id] = call
        try:
            done, _ = await asyncio.wait({call}, timeout=self.settings.dispatch.retry.kill_time)
            if not done:
                call.cancel()
                await asyncio.wait({call})
                if not call.cancelled() and call.exception() is None:
                    return call.result()
                return CallResult(RESULT_TIMEOUT, retryable=True,
                                  error_text="the call timed out")
            return call.result()
        except asyncio.CancelledError:
            if not call.done():  # we are the one cancelled: shutdown
                call.cancel()
                return None
            if c.delivery_id not in self.cancelling:
                return None
            # an operator cancelled this delivery and the driver just stopped
            return CallResult(CANCELLED, duration=(utcnow() - started).total_seconds(),
                              error_text="cancelled during the call")
        except Exception as exc:  # noqa: BLE001 - a driver bug is a failed call, not a crash
            log.exception("driver_error", delivery_id=c.delivery_id)
            return CallResult("provider_error", retryable=True,
                              error_text=f"driver error: {type(exc).__name__}")
        finally:
            self.calls.pop(c.delivery_id, None)

    def _policy(self, c: Claim, options: dict[str, str]) -> RetrySettings:
        """[dispatch.retry], then the driver's `retry`, then the account's overrides, then
        the mail's `retries:`."""
        policy = self.driver_policy
        try:
            policy = with_overrides(policy, c.retry_policy)
        except (ValueError, TypeError, AttributeError):  # checked when set: falls back
            log.warning("retry_policy_ignored", delivery_id=c.delivery_id)
        return voice.retry_policy(policy, options)

    async def _record(self, item: Finished) -> str | None:
        """Record an ended call; calls ending within a few ms share one transaction."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.to_record.append((item, future))
        if self.recorder is None or self.recorder.done():
            self.recorder = asyncio.create_task(self._record_batches())
        return await future

    async def _record_batches(self, wait: float = 0.002, most: int = 64) -> None:
        while self.to_record:
            await asyncio.sleep(wait)  # let the calls ending now join this batch
            batch, self.to_record = self.to_record[:most], self.to_record[most:]
            try:
                states = await asyncio.to_thread(
                    self.jobs.record, self.owner, [i for i, _ in batch], self.driver.name)
                results: list[tuple[str | None, BaseException | None]] = [
                    (st, None) for st in states]
            except Exception:  # noqa: BLE001 - one bad item must not fail the others
                results = []
                for item, _ in batch:  # one at a time: only the failing one fails
                    try:
                        one = await asyncio.to_thread(
                            self.jobs.record, self.owner, [item], self.driver.name)
                        results.append((one[0], None))
                    except Exception as exc:  # noqa: BLE001 - raised in its own _call
                        results.append((None, exc))
            for (_, future), (state, error) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(state)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        """Keep our leases alive, and stop the calls an operator cancelled."""
        every = min(max(self.lease / 3, 0.05), 2.0)
        while not stop.is_set():
            await asyncio.sleep(every)
            ids = list(self.inflight)
            if not ids:
                continue
            try:
                _held, cancel = await asyncio.to_thread(leases.heartbeat, self.store,
                                                        self.owner, ids, self.lease)
            except Exception:  # noqa: BLE001
                log.exception("heartbeat_failed")
                continue
            for delivery_id in cancel:
                if delivery_id in self.inflight and delivery_id not in self.cancelling:
                    log.info("call_cancel_requested", delivery_id=delivery_id)
                    self.cancelling.add(delivery_id)
                    call = self.calls.get(delivery_id)
                    if call is not None:
                        call.cancel()

    async def _reap_loop(self, stop: asyncio.Event) -> None:
        every = max(self.lease / 2, 0.1)
        while not stop.is_set():
            try:
                reaped = await asyncio.to_thread(self.jobs.reap)
                if reaped:
                    log.warning("leases_reaped", count=reaped)
                    metrics.leases_reaped(reaped)
                    self.wake()
            except Exception:  # noqa: BLE001
                log.exception("reap_failed")
            await asyncio.sleep(every)
