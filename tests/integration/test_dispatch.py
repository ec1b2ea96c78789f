"""Dispatch through the whole app: cancel (scheduled and in flight), retry, sending window,
one call at a time per number, credits settled at the outcome."""

from __future__ import annotations

import smtplib
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from mailgw.accounts import accounts
from mailgw.documents.samples import make_pdf
from mailgw.jobs.service import Jobs
from mailgw.notify.render import Renderer
from mailgw.store import Account, Attempt, Delivery, Job
from mailgw.store import dispatch as leases
from mailgw.store import record as results
from tests.conftest import PASSWORD, SENDER, fax_message, wait_until
from tests.integration.test_cli import mailgw
from tests.integration.test_end_to_end import send


def jobs_of(app) -> Jobs:  # type: ignore[no-untyped-def]
    s = app.settings
    return Jobs(app.store, s, Renderer(from_address=s.notify.from_address,
                                       domain=s.gateway.domain))


def delivery(app, number: str) -> Delivery:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        d = s.scalar(select(Delivery).where(Delivery.number == number))
        assert d is not None
        return d


def test_cancel_a_call_in_flight(make_app, sink) -> None:
    # 98 = slow: ten times a normal call; time_scale makes it last ~20 s unless cancelled
    app = make_app(drivers={"simulator": {"time_scale": 0.05}}, dispatch={"lease_seconds": "3s"})
    app.add_account()
    assert send(app.port, fax_message(f"{PASSWORD}:0170709998", make_pdf([["x"]])))
    wait_until(lambda: delivery(app, "+33170709998").state == "sending", what="the call")
    job_id = delivery(app, "+33170709998").job_id
    report = jobs_of(app).cancel(job_id)
    assert report is not None and report.requested == 1
    notice = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 15,
                           "the cancelled notice")
    (n,) = [m for m in notice if m["X-Mailgw-Kind"] == "notice"]
    assert n["X-Mailgw-State"] == "cancelled" and n["Subject"].startswith("Cancelled")
    with app.store.read() as s:
        (attempt,) = s.scalars(select(Attempt)).all()
        assert attempt.result == "cancelled"
        job = s.get(Job, job_id)
        assert job is not None and job.state == "cancelled" and job.outcome == "delivered_none"


def test_deferred_job_cancelled_by_subject_and_by_cli(make_app, sink, tmp_path: Path) -> None:
    app = make_app()
    app.add_account()
    when = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=2)).strftime("%H%M%d%m%Y")
    pdf = make_pdf([["x"]])
    first = send(app.port, fax_message(f"{PASSWORD}:0170709901:R1::{when}", pdf))
    second = send(app.port, fax_message(f"{PASSWORD}:0170709902:R2::{when}", pdf))
    assert first.startswith("250 2.0.0 [81]") and second.startswith("250 2.0.0 [81]")
    cancel = send(app.port, fax_message(f"{PASSWORD}:0170709901:::{when}s", None))
    assert cancel.startswith("250 2.0.0 [95]"), cancel
    acks = sink.wait_for(lambda ms: any(m["X-Mailgw-Code"] == "95" for m in ms), what="95")
    ack95 = next(m for m in acks if m["X-Mailgw-Code"] == "95")
    job1 = delivery(app, "+33170709901").job_id
    assert ack95["X-Mailgw-Job"] == str(job1)
    assert delivery(app, "+33170709901").state == "cancelled"
    assert delivery(app, "+33170709902").state == "scheduled"
    nothing = fax_message(f"{PASSWORD}:0170709903:::{when}s", None)
    try:
        send(app.port, nothing)
        raise AssertionError("a cancel that matches nothing must be refused")
    except Exception as exc:  # smtplib.SMTPDataError
        assert "[96]" in str(exc)
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[store]\nurl = "{app.settings.store.url}"\n')
    job2 = delivery(app, "+33170709902").job_id
    r = mailgw("jobs", "cancel", str(job2), "--config", str(cfg))
    assert r.returncode == 0 and "1 cancelled" in r.stdout, r.stdout + r.stderr
    assert delivery(app, "+33170709902").state == "cancelled"
    assert mailgw("jobs", "cancel", str(job2), "--config", str(cfg)).returncode == 1


def test_deferred_jobs_cancelled_by_ref(make_app, sink) -> None:
    """The user guides: with no numbers, the same ref and the same time cancel every job
    they name (95, the ack naming them); no document is needed; nothing left is 96."""
    app = make_app()
    app.add_account()
    when = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=3)).strftime("%H%M%d%m%Y")
    pdf = make_pdf([["x"]])
    for subject in (f"{PASSWORD}:0170709901,0170709902:INV-7::{when}",
                    f"{PASSWORD}:0170709903:INV-7:relance:{when}",
                    f"{PASSWORD}:0170709904:INV-8::{when}"):
        assert send(app.port, fax_message(subject, pdf)).startswith("250 2.0.0 [81]")
    inv7 = sorted({delivery(app, n).job_id for n in ("+33170709901", "+33170709903")})
    cancel = send(app.port, fax_message(f"Re: {PASSWORD}::INV-7::{when}s", None))
    assert cancel.startswith("250 2.0.0 [95]"), cancel
    assert f"jobs {inv7[0]}, {inv7[1]}" in cancel
    acks = sink.wait_for(lambda ms: any(m["X-Mailgw-Code"] == "95" for m in ms), what="95")
    ack95 = next(m for m in acks if m["X-Mailgw-Code"] == "95")
    assert ack95["X-Mailgw-Job"] == ",".join(map(str, inv7))
    for number in ("+33170709901", "+33170709902", "+33170709903"):
        assert delivery(app, number).state == "cancelled"
    assert delivery(app, "+33170709904").state == "scheduled"
    for subject in (f"{PASSWORD}::INV-7::{when}s", f"{PASSWORD}::INV-9::{when}s"):
        try:
            send(app.port, fax_message(subject, None))
            raise AssertionError(f"{subject}: nothing left to cancel must be refused")
        except smtplib.SMTPDataError as exc:
            assert exc.smtp_code == 550 and b"[96]" in exc.smtp_error, exc
    assert delivery(app, "+33170709904").state == "scheduled"


def test_retry_queues_failed_deliveries_again_with_a_new_notice(make_app, sink) -> None:
    app = make_app(dispatch={"retry": {"max_attempts": 1}})
    app.add_account(credits=10)
    assert send(app.port, fax_message(f"{PASSWORD}:0170709994", make_pdf([["x"], ["y"]])))
    sink.wait_for(lambda ms: any(m["X-Mailgw-State"] == "failed" for m in ms), what="failed")
    d = delivery(app, "+33170709994")
    with app.store.read() as s:
        acc = s.scalar(select(Account))
        assert acc is not None and acc.credits == 10  # nothing reached anyone: refunded
    assert jobs_of(app).retry(d.job_id) == 1
    app.app.dispatcher.wake()  # type: ignore[union-attr]
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-State"] == "failed"]) == 2,
                  what="a second failed notice after the retry")
    with app.store.read() as s:
        assert len(s.scalars(select(Attempt)).all()) == 2
        acc = s.scalar(select(Account))
        assert acc is not None and acc.credits == 10


def test_credits_are_settled_at_the_outcome(make_app, sink) -> None:
    app = make_app(dispatch={"retry": {"max_attempts": 2}})
    app.add_account(credits=10)
    pdf = make_pdf([["a"], ["b"]])
    # 96: 1 of 2 pages reach the far end; 97: not in service. Reserved 4, used 1.
    assert send(app.port, fax_message(f"{PASSWORD}:0170709996,0170709997", pdf))
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) == 2,
                  what="two notices")
    with app.store.read() as s:
        acc = s.scalar(select(Account))
        assert acc is not None and acc.credits == 9


def test_sending_window_holds_deliveries(make_app, sink) -> None:
    app = make_app()
    app.add_account()
    paris = datetime.now(ZoneInfo("Europe/Paris"))
    tomorrow = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(paris.weekday() + 1) % 7]
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, window=f"08:00-20:00 {tomorrow}")
    assert send(app.port, fax_message(f"{PASSWORD}:0170709901", make_pdf([["x"]])))
    wait_until(lambda: delivery(app, "+33170709901").next_attempt_at > datetime.now(
        ZoneInfo("UTC")) + timedelta(hours=1), what="the delivery pushed to the window")
    d = delivery(app, "+33170709901")
    assert d.state == "queued" and d.attempts == 0
    opening = d.next_attempt_at.astimezone(ZoneInfo("Europe/Paris"))
    assert opening.strftime("%H:%M") == "08:00" and opening.date() > paris.date()


def test_one_call_at_a_time_to_the_same_number(make_app, sink) -> None:
    app = make_app(drivers={"simulator": {"time_scale": 0.01, "lines": 4}})
    app.add_account()
    pdf = make_pdf([["x"]])
    for _ in range(3):
        assert send(app.port, fax_message(f"{PASSWORD}:0170709955", pdf))
    sink.wait_for(lambda ms: len([m for m in ms if m["X-Mailgw-Kind"] == "notice"]) == 3,
                  30, "three notices")
    with app.store.read() as s:
        spans = sorted((a.started_at, a.ended_at) for a in s.scalars(select(Attempt)))
    assert len(spans) == 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans  # never two calls to +33170709955 at once


def test_account_retry_policy_overrides_the_config(make_app, sink) -> None:
    """`account set --retry max_attempts=1`: 90 (busy once, then delivered) now fails after
    its one busy call, where [dispatch.retry] alone would have retried and delivered."""
    app = make_app(dispatch={"retry": {"max_attempts": 3, "busy": "1s"}})
    app.add_account()
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, retry="max_attempts=1")
    assert send(app.port, fax_message(f"{PASSWORD}:0170709990", make_pdf([["x"]])))
    sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 20, "a notice")
    d = delivery(app, "+33170709990")
    with app.store.read() as s:
        results = [a.result for a in s.scalars(select(Attempt).order_by(Attempt.id))]
    assert (d.state, results) == ("failed", ["busy"])
    # back to the config's policy: the same number is retried after the busy call
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, retry="default")
    assert jobs_of(app).retry(d.job_id) == 1
    app.app.dispatcher.wake()  # type: ignore[union-attr]
    wait_until(lambda: delivery(app, "+33170709990").state == "delivered", 20,
               "the retried delivery")


def test_cancel_mid_fax_keeps_the_pages_already_sent(make_app, sink) -> None:
    """A cancel reaches the driver's call; the driver's answer (pages confirmed before the
    hang-up) is what gets recorded and told, not a blank "cancelled"."""
    # 98 = slow: 3 pages take (15 + 3 x 30) x 10 x 0.02 = 21 s; connect 3 s, 6 s a page
    app = make_app(drivers={"simulator": {"time_scale": 0.02}}, dispatch={"lease_seconds": "3s"})
    app.add_account()
    assert send(app.port, fax_message(f"{PASSWORD}:0170709998", make_pdf([["a"], ["b"], ["c"]])))
    wait_until(lambda: delivery(app, "+33170709998").state == "sending", what="the call")
    time.sleep(10)  # connect and the first page are through
    report = jobs_of(app).cancel(delivery(app, "+33170709998").job_id)
    assert report is not None and report.requested == 1
    mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms), 30,
                          "the cancelled notice")
    (n,) = [m for m in mails if m["X-Mailgw-Kind"] == "notice"]
    with app.store.read() as s:
        (attempt,) = s.scalars(select(Attempt)).all()
        d = s.scalars(select(Delivery)).one()
    assert attempt.result == "cancelled" and 1 <= attempt.pages_sent <= 2
    assert (d.state, d.pages_sent) == ("cancelled", attempt.pages_sent)
    text = n.get_body(preferencelist=("plain",)).get_content()
    assert n["X-Mailgw-State"] == "cancelled" and f"{d.pages_sent}/3" in text


def test_simulated_cancel_counts_the_confirmed_pages() -> None:
    from mailgw.dispatch.drivers.base import CallRequest
    from mailgw.dispatch.drivers.simulator import cancelled, outcome

    full = outcome(CallRequest(1, 1, "fax", "+33170709901", "k", pages_total=3))
    assert [cancelled(full, t).pages_sent for t in (10, 44, 46, 76, 200)] == [0, 0, 1, 2, 3]
    assert cancelled(full, 10).csid is None and cancelled(full, 46).csid == full.csid


# -- record_many: one transaction for a batch, the same as one call at a time ----------------

def _mixed_batch_cases():  # type: ignore[no-untyped-def]
    """(last digits, job, channel, pages_total, credits, result, setup) for each delivery."""
    from mailgw.dispatch.drivers.base import CallResult

    return [
        ("01", 1, "fax", 3, 3, CallResult("delivered", pages_sent=3, csid="CSID 01"), None),
        ("02", 1, "fax", 3, 3, CallResult("busy", retryable=True), None),
        ("03", 1, "fax", 3, 3, CallResult("partial", pages_sent=1, csid="CSID 03"), None),
        ("04", 1, "fax", 3, 3, CallResult("not_in_service", error_code="404"), None),
        ("05", 1, "fax", 3, 3, CallResult("busy", retryable=True), "cancel"),
        ("06", 2, "fax", 3, 3, CallResult("delivered", pages_sent=3, csid="CSID 06"), None),
        ("07", 2, "fax", 3, 3, CallResult("not_fax", error_text="a voice answered"), None),
        ("08", 3, "fax", 3, 3, CallResult("provider_error", retryable=True), "earlier_error"),
        ("09", 4, "voice", None, 1, CallResult("delivered", duration=12.0), None),
        ("10", 4, "voice", None, 1, CallResult("no_answer"), None),
        ("11", 1, "fax", 3, 3, CallResult("delivered", pages_sent=3), "lease_lost"),
    ]


def test_record_many_mixed_batch_equals_one_at_a_time(store_url: str) -> None:
    """Delivered, busy (queued again), partial, final failure, cancelled, a lost lease,
    several deliveries of one job: one record_many gives the same delivery states, attempt
    rows, job outcomes, credits and on_final views as recording them one by one."""
    from mailgw.ops.config import RetrySettings
    from mailgw.store import Store, utcnow

    policy = RetrySettings(busy=180, no_answer=300, line_dropped=60, provider_error=30,
                           max_attempts=5, kill_time=3 * 3600)
    store = Store(store_url)
    store.upgrade()
    cases = _mixed_batch_cases()
    now = utcnow()
    try:
        accounts_ = {}
        with store.tx() as s:
            for way in ("batch", "single"):
                acc = accounts.add_account(s, f"{way}@example.com", "pw", region="FR",
                                           lang="en", tz="Europe/Paris", credits=100)
                jobs = {}
                for n in sorted({c[1] for c in cases}):
                    channel = next(c[2] for c in cases if c[1] == n)
                    jobs[n] = Job(account_id=acc.id, channel=channel, sender=acc.email,
                                  state="active", outcome="in_progress",
                                  pages=3 if channel == "fax" else None)
                    s.add(jobs[n])
                s.flush()
                for last, n, _ch, pages, credits, _res, _setup in cases:
                    s.add(Delivery(job_id=jobs[n].id, number=f"+3317070{way == 'single':d}0{last}",
                                   state="queued", next_attempt_at=now - timedelta(seconds=5),
                                   attempts=0, pages_sent=0, pages_total=pages,
                                   credits_reserved=credits, cancel_requested=False))
                accounts_[way] = acc.id
        claims = {c.number: c for c in leases.claim(store, "me", 100, 60)}
        assert len(claims) == 2 * len(cases)
        with store.tx() as s:
            for d in s.scalars(select(Delivery)):
                setup = next(c[6] for c in cases if d.number.endswith(c[0]))
                if setup == "cancel":
                    d.cancel_requested = True
                elif setup == "lease_lost":
                    d.lease_owner = "another-node"
                elif setup == "earlier_error":
                    s.add(Attempt(delivery_id=d.id, started_at=now, ended_at=now,
                                  driver="sim", result="provider_error", pages_sent=0))
        started, ended = now, now + timedelta(seconds=30)
        views: dict[str, list[tuple[str, str, str, str]]] = {"batch": [], "single": []}

        def viewer(way: str):  # type: ignore[no-untyped-def]
            def on_final_(s, job, d) -> None:  # type: ignore[no-untyped-def]
                views[way].append((d.number[-2:], d.state, job.outcome, job.state))
            return on_final_

        def finished(way: str) -> list[results.Finished]:
            return [results.Finished(claims[f"+3317070{way == 'single':d}0{c[0]}"], c[5],
                                     started, ended, policy) for c in cases]

        got = results.record_many(store, "me", finished("batch"), "sim", viewer("batch"))
        one = [results.record(store, "me", f.claim, f.result, "sim", f.started, f.ended,
                              f.policy, viewer("single")) for f in finished("single")]
        assert got == one == ["delivered", "queued", "partial", "failed", "cancelled",
                              "delivered", "failed", "queued", "delivered", "failed", None]
        assert views["batch"] == views["single"]
        assert views["batch"] == [
            ("01", "delivered", "in_progress", "active"),
            ("03", "partial", "in_progress", "active"),
            ("04", "failed", "in_progress", "active"),
            ("05", "cancelled", "in_progress", "active"),
            ("06", "delivered", "in_progress", "active"),  # 07 ends in the same batch
            ("07", "failed", "partial", "done"),
            ("09", "delivered", "in_progress", "active"),
            ("10", "failed", "partial", "done")]

        def snapshot(way: str):  # type: ignore[no-untyped-def]
            with store.read() as s:
                acc = s.get(Account, accounts_[way])
                assert acc is not None
                jobs = list(s.scalars(select(Job).where(Job.account_id == acc.id)
                                      .order_by(Job.id)))
                ds = list(s.scalars(select(Delivery).where(Delivery.job_id.in_(
                    [j.id for j in jobs])).order_by(Delivery.id)))
                rows = [(d.number[-2:], d.state, d.attempts, d.pages_sent, d.csid,
                         d.next_attempt_at, d.finished_at, d.credits_reserved, d.lease_owner,
                         d.cancel_requested,
                         [(a.result, a.pages_sent, a.pages_total, a.first_page, a.csid,
                           a.duration, a.error_class, a.error_code, a.error_text, a.driver,
                           a.started_at, a.ended_at)
                          for a in s.scalars(select(Attempt).where(Attempt.delivery_id == d.id)
                                             .order_by(Attempt.id))])
                        for d in ds]
                return (acc.credits, [(j.outcome, j.state, j.finished_at is None)
                                      for j in jobs], rows)

        batch, single = snapshot("batch"), snapshot("single")
        assert batch == single
        credits, jobs, rows = batch
        assert credits == 100 + 2 + 3 + 3 + 3 + 1  # 03, 04, 05, 07 (fax), 10 (voice)
        assert jobs == [("in_progress", "active", True), ("partial", "done", False),
                        ("in_progress", "active", True), ("partial", "done", False)]
        by = {r[0]: r for r in rows}
        assert by["02"][1] == "queued" and by["02"][5] == ended + timedelta(seconds=180)
        assert by["08"][5] == ended + timedelta(seconds=60)  # back-off after an earlier error
        assert by["01"][6] == ended and by["02"][6] is None
        assert [r[7] for r in rows] == [3, 3, 1, 0, 0, 3, 0, 3, 1, 0, 3]
        assert by["11"][1] == "sending" and by["11"][8] == "another-node"
        assert all(len(r[10]) == (2 if r[0] == "08" else 1) for r in rows)
    finally:
        store.dispose()


def test_driver_retry_overrides_the_config_and_the_account_overrides_the_driver(
        make_app, sink) -> None:
    """[drivers.simulator] retry = "max_attempts=1": 90 (busy once) fails after one call;
    an account with its own max_attempts=3 gets its retry and is delivered."""
    app = make_app(dispatch={"retry": {"max_attempts": 3, "busy": "1s"}},
                   drivers={"simulator": {"retry": "max_attempts=1"}})
    app.add_account()
    assert send(app.port, fax_message(f"{PASSWORD}:0170709990", make_pdf([["x"]])))
    wait_until(lambda: delivery(app, "+33170709990").state == "failed", 20, "failed")
    with app.store.tx() as s:
        accounts.update_account(s, SENDER, retry="max_attempts=3")
    assert send(app.port, fax_message(f"{PASSWORD}:0170709990:AGAIN", make_pdf([["y"]])))

    def second_delivered() -> bool:
        with app.store.read() as s:
            states_ = s.scalars(select(Delivery.state).order_by(Delivery.id)).all()
        return list(states_) == ["failed", "delivered"]

    wait_until(second_delivered, 20, "the second job delivered after its busy call")
