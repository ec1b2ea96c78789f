"""The jobs service owns finishing: a delivery's final state and its notice are committed
together or not at all. A worker killed between the final result and the commit, a commit
that fails, a notice hook that raises: afterwards nothing is lost (the delivery goes back to
the queue, or the cancel can be made again) and nothing is doubled (one attempt row, one
notice, one refund)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from mailgw.accounts import accounts
from mailgw.dispatch.drivers.base import CallResult
from mailgw.jobs.service import Finished, Jobs, RetryRefused
from mailgw.notify.render import Renderer
from mailgw.ops import config
from mailgw.ops.config import RetrySettings
from mailgw.store import Account, Attempt, Delivery, Job, OutboxMail, Store, utcnow
from mailgw.store import dispatch as leases
from tests.conftest import make_settings, wait_until

POLICY = RetrySettings(busy=60, no_answer=60, line_dropped=60, provider_error=30,
                       max_attempts=3, kill_time=3600)
DELIVERED = CallResult("delivered", pages_sent=2, csid="CSID 1", duration=60.0)


class Boom(Exception):
    """The failure a test injects."""


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.upgrade()
    yield s
    s.dispose()


def settings_for(url: str) -> config.Settings:
    return make_settings(url, 2525)


def service(store: Store, url: str, **kw: Any) -> Jobs:
    s = settings_for(url)
    return Jobs(store, s, Renderer(from_address=s.notify.from_address, domain=s.gateway.domain),
                **kw)


def a_job(store: Store, numbers: list[str], *, state: str = "queued", credits: int = 10) -> int:
    """A fax job of two pages to `numbers`, its credits reserved (2 a number)."""
    now = utcnow()
    with store.tx() as s:
        acc = accounts.add_account(s, "jobs@example.com", "pw", region="FR", lang="en",
                                   tz="Europe/Paris", credits=credits)
        account = s.get(Account, acc.id)
        assert account is not None and account.credits is not None
        account.credits -= 2 * len(numbers)
        job = Job(account_id=acc.id, channel="fax", sender=acc.email, subject="pw:0170709901",
                  message_id="<jobs-service@example.com>", state="active",
                  outcome="in_progress", pages=2, recipient_count=len(numbers))
        s.add(job)
        s.flush()
        for number in numbers:
            s.add(Delivery(job_id=job.id, number=number, state=state,
                           next_attempt_at=now - timedelta(seconds=1), attempts=0, pages_sent=0,
                           pages_total=2, credits_reserved=2, cancel_requested=False))
        return job.id


def counts(store: Store) -> dict[str, Any]:
    """What a failed finish must not have left behind, and a good one must have left once."""
    with store.read() as s:
        notices = list(s.scalars(select(OutboxMail).where(OutboxMail.kind == "notice")))
        return {
            "states": sorted(s.scalars(select(Delivery.state))),
            "attempts": s.scalar(select(func.count()).select_from(Attempt)),
            "notices": sorted((n.delivery_id, message_from_bytes(n.body)["X-Mailgw-State"])
                              for n in notices),
            "credits": s.scalar(select(Account.credits)),
            "job": tuple(s.execute(select(Job.state, Job.outcome)).one()),
        }


@contextmanager
def failing_commit(times: int = 1) -> Iterator[list[int]]:
    """The store fails at commit, after every statement of the transaction has run."""
    failed: list[int] = []

    def before_commit(_session: Session) -> None:
        if len(failed) < times:
            failed.append(1)
            raise Boom("the store failed at commit")

    event.listen(Session, "before_commit", before_commit)
    try:
        yield failed
    finally:
        event.remove(Session, "before_commit", before_commit)


# -- a worker killed between the final result and the commit ---------------------------------

KILLED_WORKER = textwrap.dedent("""
    import os, sys
    from datetime import timedelta
    from mailgw.dispatch.drivers.base import CallResult
    from mailgw.jobs.service import Finished, Jobs
    from mailgw.notify.messages import notice_on_final
    from mailgw.notify.render import Renderer
    from mailgw.ops.config import RetrySettings
    from mailgw.store import Store, utcnow
    from mailgw.store import dispatch as leases
    from tests.conftest import make_settings

    url = sys.argv[1]
    store = Store(url)
    settings = make_settings(url, 2525)
    notice = notice_on_final(settings, Renderer(from_address=settings.notify.from_address,
                                                domain=settings.gateway.domain))

    def killed(s, job, delivery):
        notice(s, job, delivery)
        s.flush()  # the state and the notice are in the database's open transaction
        os._exit(9)  # and the worker dies before the commit

    (claim,) = leases.claim(store, "doomed", 5, lease_seconds=0.3)
    now = utcnow()
    Jobs(store, settings, None, notices=killed).record("doomed", [Finished(
        claim, CallResult("delivered", pages_sent=2, csid="CSID 1", duration=60.0), now,
        now + timedelta(seconds=60), RetrySettings())], "simulator")
    sys.exit(0)  # not reached
""")


def test_a_worker_killed_before_the_commit_loses_and_doubles_nothing(store: Store,
                                                                     store_url: str) -> None:
    job_id = a_job(store, ["+33170709901"])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.run([sys.executable, "-c", KILLED_WORKER, store_url], cwd=root,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == 9, child.stderr
    # Nothing of the final result survived, neither the state nor the notice nor the refund.
    assert counts(store) == {"states": ["sending"], "attempts": 0, "notices": [],
                             "credits": 8, "job": ("active", "in_progress")}
    # The lease runs out; the delivery is handed back and claimed again, the same attempt.
    jobs = service(store, store_url)
    wait_until(lambda: jobs.reap() == 1, 10, "the dead worker's lease to be reaped")
    (claim,) = leases.claim(store, "heir", 5, lease_seconds=60)
    assert (claim.job_id, claim.attempt) == (job_id, 1)
    now = utcnow()
    done = [Finished(claim, DELIVERED, now, now + timedelta(seconds=60), POLICY)]
    assert jobs.record("heir", done, "simulator") == ["delivered"]
    after = counts(store)
    assert after["states"] == ["delivered"] and after["attempts"] == 1
    assert [state for _, state in after["notices"]] == ["delivered"]  # exactly one notice
    assert after["credits"] == 8 and after["job"] == ("done", "delivered_all")
    # The dead worker's result, recorded late (a second worker, a retry): no second notice.
    assert jobs.record("doomed", done, "simulator") == [None]
    late = counts(store)
    assert late.pop("attempts") == 2  # the call it reports is kept as an attempt row
    assert late == {k: v for k, v in after.items() if k != "attempts"}


# -- failures inside the finishing transaction ------------------------------------------------

def test_a_failed_commit_of_a_batch_writes_nothing_and_the_retry_writes_once(
        store: Store, store_url: str) -> None:
    a_job(store, ["+33170709901", "+33170709902"])
    claims = leases.claim(store, "w", 5, lease_seconds=60)
    now = utcnow()
    done = [Finished(c, DELIVERED, now, now + timedelta(seconds=60), POLICY) for c in claims]
    jobs = service(store, store_url)
    with failing_commit() as failed, pytest.raises(Boom):
        jobs.record("w", done, "simulator")
    assert failed == [1]
    assert counts(store) == {"states": ["sending", "sending"], "attempts": 0, "notices": [],
                             "credits": 6, "job": ("active", "in_progress")}
    # Still our leases: the dispatcher records the batch again (one at a time).
    assert [jobs.record("w", [f], "simulator") for f in done] == [["delivered"], ["delivered"]]
    after = counts(store)
    ids = sorted(c.delivery_id for c in claims)
    assert after == {"states": ["delivered", "delivered"], "attempts": 2,
                     "notices": [(ids[0], "delivered"), (ids[1], "delivered")],
                     "credits": 6, "job": ("done", "delivered_all")}


def test_a_notice_hook_that_raises_takes_the_state_change_back(store: Store,
                                                               store_url: str) -> None:
    a_job(store, ["+33170709901"])
    (claim,) = leases.claim(store, "w", 5, lease_seconds=60)
    real = service(store, store_url)

    def broken(s: Session, job: Job, d: Delivery) -> None:
        real.notices(s, job, d)
        raise Boom("rendering failed after the notice row was added")

    now = utcnow()
    done = [Finished(claim, CallResult("not_in_service", error_code="404"), now, now, POLICY)]
    with pytest.raises(Boom):
        service(store, store_url, notices=broken).record("w", done, "simulator")
    assert counts(store) == {"states": ["sending"], "attempts": 0, "notices": [], "credits": 8,
                             "job": ("active", "in_progress")}
    assert real.record("w", done, "simulator") == ["failed"]
    assert counts(store) == {"states": ["failed"], "attempts": 1,
                             "notices": [(claim.delivery_id, "failed")], "credits": 10,
                             "job": ("done", "delivered_none")}


def test_a_cancel_whose_commit_fails_can_be_made_again(store: Store, store_url: str) -> None:
    job_id = a_job(store, ["+33170709901", "+33170709902"], state="scheduled")
    jobs = service(store, store_url)
    with failing_commit(), pytest.raises(Boom):
        jobs.cancel(job_id)
    assert counts(store) == {"states": ["scheduled", "scheduled"], "attempts": 0,
                             "notices": [], "credits": 6, "job": ("active", "in_progress")}
    report = jobs.cancel(job_id)
    assert report is not None and (report.cancelled, report.requested, report.untouched) == (
        2, 0, 0)
    after = counts(store)
    assert [st for _, st in after["notices"]] == ["cancelled", "cancelled"]
    assert after["credits"] == 10 and after["job"] == ("cancelled", "delivered_none")
    again = jobs.cancel(job_id)  # nothing left to cancel: nothing told twice
    assert again is not None and (again.cancelled, again.untouched) == (0, 2)
    assert counts(store) == after


# -- the service's decisions ------------------------------------------------------------------

def test_cancel_stops_calls_in_flight_and_leaves_final_ones(store: Store, store_url: str) -> None:
    job_id = a_job(store, ["+33170709901", "+33170709902", "+33170709903"])
    (claim, *_) = leases.claim(store, "w", 1, lease_seconds=60)  # one call in flight
    with store.tx() as s:
        third = s.scalar(select(Delivery).where(Delivery.number == "+33170709903"))
        assert third is not None and claim.number != third.number
        third.state = "failed"
    report = service(store, store_url).cancel(job_id)
    assert report is not None and (report.cancelled, report.requested, report.untouched) == (
        1, 1, 1)
    with store.read() as s:
        asked = s.scalar(select(Delivery.cancel_requested).where(
            Delivery.id == claim.delivery_id))
    assert asked is True
    assert service(store, store_url).cancel(job_id + 1000) is None


def test_retry_queues_failed_deliveries_and_says_why_it_cannot(store: Store,
                                                              store_url: str) -> None:
    job_id = a_job(store, ["+33170709901", "+33170709902"], credits=4)  # 0 left
    with store.tx() as s:
        for d in s.scalars(select(Delivery)):
            d.state, d.credits_reserved = "failed", 0
        account = s.scalar(select(Account))
        assert account is not None
        account.credits = 3
    jobs = service(store, store_url)
    with pytest.raises(RetryRefused, match="4 credits needed, 3 left"):
        jobs.retry(job_id)
    with store.tx() as s:
        account = s.scalar(select(Account))
        assert account is not None
        account.credits = 4
    assert jobs.retry(job_id) == 2
    assert counts(store)["states"] == ["queued", "queued"] and counts(store)["credits"] == 0
    assert jobs.retry(job_id) == 0 and jobs.retry(job_id + 1000) is None
    with store.tx() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.document_name, job.document = "doc.pdf", None  # `db purge` took it
    with pytest.raises(RetryRefused, match="purged"):
        jobs.retry(job_id)
