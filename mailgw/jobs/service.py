"""The one owner of a job's life: create, defer, cancel, retry and finish, and the notice
that finishing causes.

Intake, the dispatcher, the CLI (and the HTTP API) call this service; none of them builds
the notice hook. Every change that makes a delivery final goes through `_finished`, inside
the transaction that makes it final, so the notice (and the webhook events) are committed
with the state or not at all (the outbox rule, DESIGN "Rules that keep data and people
safe"). The SQL is in store.jobs (finish, cancel, retry, create), store.record (a call's
result) and store.dispatch (leases); the rules in dispatch.states.

The life of a job, and the method for each step:
- create: `insert` and `reserve_credits`, in intake's batch transaction;
- defer: a job sent later waits `scheduled`; a call that ended retryably goes back to the
  queue with its next time (`record`); a lease handed back (`release`) or lost (`reap`)
  puts the delivery back without counting the attempt;
- cancel: `cancel` (the operator, the API), `cancel_scheduled` (a cancel mail);
- retry: `retry` queues failed and expired deliveries again;
- finish: `record` (the dispatcher) and the cancels; each final delivery gets `_finished`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mailgw.jobs import views
from mailgw.notify.messages import notice_on_final
from mailgw.notify.render import Renderer
from mailgw.ops import metrics
from mailgw.ops.config import Settings
from mailgw.store import Delivery, Job, Store, utcnow
from mailgw.store import dispatch as leases
from mailgw.store import jobs as rows
from mailgw.store import record as results
from mailgw.store.jobs import CancelReport, OnFinal, RetryRefused, Row
from mailgw.store.record import Finished

__all__ = ["CancelReport", "Finished", "Jobs", "RetryRefused", "Row"]


class Jobs:
    """A job's life over one store. `notices` replaces the notice hook (benchmarks that
    measure dispatch alone); by default it is notify's, built here and nowhere else."""

    def __init__(self, store: Store, settings: Settings, renderer: Renderer, *,
                 notices: OnFinal | None = None):
        self.store = store
        self.settings = settings
        self.notices = notices if notices is not None else notice_on_final(settings, renderer)

    def _finished(self, s: Session, job: Job, delivery: Delivery) -> None:
        """A delivery became final in `s`'s transaction: its notice goes in with it."""
        self.notices(s, job, delivery)
        metrics.delivery_final(delivery.state)

    # -- intake: create, in the batch's transaction ---------------------------------------

    def create(self, conn: Connection, jobs: list[tuple[Row, list[Row]]]) -> list[int]:
        """New jobs and their deliveries (scheduled: deferred to `send_at`, else queued);
        their ids, in order. The dispatchers are woken at commit."""
        return rows.insert_jobs(conn, jobs)

    def balance(self, conn: Connection, account_id: int) -> int | None:
        """The account's credits (None: no limit), held until the commit, so two batches
        never spend the same credit."""
        return rows.read_credits(conn, account_id, lock=self.store.is_postgres)

    def debit(self, conn: Connection, account_id: int, cost: int) -> None:
        """Reserve a new job's credits (a final delivery gives back what did not reach)."""
        rows.debit(conn, account_id, cost)

    def scheduled(self, s: Session, account_id: int, when: datetime) -> list[Job]:
        """The account's jobs scheduled at `when`: what a cancel mail may name."""
        return rows.scheduled_jobs(s, account_id, when)

    # -- the dispatcher ------------------------------------------------------------------

    def record(self, owner: str, done: Sequence[Finished], driver: str) -> list[str | None]:
        """Ended calls, one transaction: their attempts, next states (queued again with a
        time: deferred; or final: finished, with the notice); None where the lease was
        lost."""
        return results.record_many(self.store, owner, done, driver, self._finished)

    def release(self, owner: str, ids: list[int]) -> int:
        """Shutdown: hand back what `owner` holds, the attempt not counted (deferred)."""
        return leases.release(self.store, owner, ids)

    def reap(self) -> int:
        """Give back deliveries whose worker died (lease expired), the attempt not counted."""
        return leases.reap(self.store)

    # -- the operator, the API, a cancel mail --------------------------------------------

    def cancel(self, job_id: int) -> CancelReport | None:
        """Cancel what has not gone out (each gets its notice); ask the worker holding a call
        in flight to stop it. None: no such job."""
        return rows.cancel_job(self.store, job_id, self._finished)

    def cancel_scheduled(self, s: Session, jobs: Iterable[Job]) -> None:
        """In the caller's transaction (a cancel mail): cancel the scheduled deliveries of
        `jobs`; their credits come back and each gets its notice."""
        for job in jobs:
            for d in job.deliveries:
                if d.state == "scheduled":
                    d.state = "cancelled"
                    rows.finish(s, d, utcnow(), self._finished)

    def retry(self, job_id: int) -> int | None:
        """Queue a job's failed and expired deliveries again; how many (None: no job).
        RetryRefused says why it cannot be done (a purged document, too little credit)."""
        if views.document_purged(self.store, job_id):
            raise RetryRefused("its document was purged (db purge); send the mail again")
        return rows.retry_job(self.store, job_id)
