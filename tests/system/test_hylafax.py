"""The HylaFAX driver against Debian's real hylafax-server (faxq + hfaxd on 127.0.0.1).

Two far ends on a pty: a fast fake Class 2.0 modem (tests/fakemodem.py: outcomes chosen per
dialled number) and, in the `slow` tests, a real T.30 fax terminal behind a spandsp Class 1
modem (tests/t31modem/t31pty.c, compiled here with gcc). The fixture and its traps are in
tests/hylafax_env.py. Numbers are French (+33 1 70 70 99 xx); HylaFAX's dial rules (country
code 1 in the fixture) dial them as 011 33 1 70 70 99 xx, and the modems match the ending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailgw.dispatch import states
from mailgw.dispatch.drivers.base import CallRequest, CallResult
from mailgw.dispatch.drivers.hylafax import HylafaxDriver, HylafaxSettings, job_params
from mailgw.dispatch.drivers.hylafax_job import classify, lasttime, line_seconds, parse_qfile
from mailgw.dispatch.setup import make_driver
from mailgw.ops import config
from mailgw.ops.config import RetrySettings
from mailgw.store import Attempt, Delivery
from tests import hylafax_env
from tests.conftest import PASSWORD, fax_message, wait_until
from tests.hylafax_env import HylafaxEnv, make_pdf
from tests.hylafax_fixtures import running

CSID = "+33 1 70 70 99 01 FAR"
PDF3 = make_pdf(3)


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
def fax(hylafax: HylafaxEnv) -> Iterator[HylafaxEnv]:
    """The shared server, with the modem's modes reset and diagnostics on failure."""
    assert hylafax.modem is not None
    hylafax.modem.set_modes({})
    (hylafax.base / "release").unlink(missing_ok=True)
    yield hylafax
    (hylafax.base / "release").unlink(missing_ok=True)


def settings(env: HylafaxEnv, **kw: Any) -> HylafaxSettings:
    values: dict[str, Any] = {"port": env.port, "user": env.USER, "poll_interval": 0.2,
                              "timeout": 15.0, "max_call_time": 600.0, "vres": 98}
    values.update(kw)
    return HylafaxSettings(**values)


_keys = iter(range(1000, 100000))


def request(number: str, *, pages: int = 3, first_page: int = 1, attempt: int = 1,
            delivery_id: int | None = None, document: bytes = PDF3) -> CallRequest:
    did = delivery_id if delivery_id is not None else next(_keys)
    return CallRequest(delivery_id=did, attempt=attempt, channel="fax", number=number,
                       idempotency_key=f"d{did}-a{attempt}", document=document,
                       pages_total=pages, first_page=first_page)


def call(env: HylafaxEnv, req: CallRequest, **kw: Any) -> CallResult:
    try:
        return asyncio.run(HylafaxDriver(settings(env, **kw)).place_call(req))
    except BaseException:
        print(env.diagnostics())
        raise


def calls_to(env: HylafaxEnv, ending: str) -> list[dict[str, Any]]:
    assert env.modem is not None
    return [e for e in env.modem.events() if "result" in e and e["number"].endswith(ending)]


def jobid(result: CallResult) -> int:
    assert result.provider_ref is not None
    return int(result.provider_ref.rsplit("-", 1)[1])


# -- pure parts (no server needed) ------------------------------------------------------------

def test_lasttime_is_relative_ddhhmm() -> None:
    assert lasttime(7200) == "000200"
    assert lasttime(3 * 3600 - 60) == "000259"
    assert lasttime(90061) == "010102"
    assert lasttime(1) == "000001"


@pytest.mark.parametrize("status, pages, csid, expected", [
    ("Busy signal detected", 0, "", ("busy", True)),
    ("No carrier detected", 0, "", ("no_answer", True)),
    ("No answer from remote", 0, "", ("no_answer", True)),
    ("No local dialtone", 0, "", ("provider_error", True)),
    ("No response to MPS repeated 3 times", 1, "X", ("line_dropped", True)),
    ("Failure to train remote modem at 2400 bps or minimum speed", 0, "X",
     ("line_dropped", True)),
    ("Job aborted by request", 0, "", ("cancelled", False)),
    ("Kill time expired", 0, "", ("timeout", True)),
    ("Remote has no T.4 receiver capability", 0, "", ("not_fax", False)),
    ("Document conversion failed", 0, "", ("provider_error", False)),
    ("Send program terminated abnormally with exit status 0xb", 0, "",
     ("provider_error", True)),
])
def test_statuses_map_to_results(status: str, pages: int, csid: str,
                                 expected: tuple[str, bool]) -> None:
    assert classify(status, pages, csid) == expected


@pytest.mark.parametrize(("quality", "cap", "vres"), [
    ("normal", 391, "98"), ("high", 391, "196"), ("best", 391, "391"),
    ("best", 196, "196"), ("high", 98, "98"), ("unknown", 391, "196")])
def test_the_job_asks_the_quality_as_vres(quality: str, cap: int, vres: str) -> None:
    req = dataclasses.replace(request("+33170709901", first_page=2), quality=quality)
    params = dict(job_params(req, HylafaxSettings(vres=cap), "mailgw-d1-a1",
                             mailgw_retries=True))
    assert params["VRES"] == vres
    assert params["PAGERANGE"] == "2-3" and params["JOBINFO"] == "mailgw-d1-a1"
    assert params["DIALSTRING"] == "+33170709901" and params["MAXDIALS"] == "1"
    assert HylafaxSettings().vres == 196  # superfine only when the operator allows it


def test_qfile_and_session_log_parsing() -> None:
    facts = parse_qfile(8, "tts:1795461042\nstate:7\nnpages:3\ntotpages:3\nnskip:2\n"
                           "csi:+1 555 0100 REMOTE\nstatus:\nstatuscode:0\ncommid:000000008\n")
    assert (facts.state, facts.pages_sent, facts.csi, facts.commid) == (
        7, 1, "+1 555 0100 REMOTE", "000000008")
    assert facts.tts == 1795461042
    silent = parse_qfile(9, "state:7\nnpages:1\ntotpages:1\ncsi:<UNSPECIFIED>\n")
    assert silent.csi == ""  # the far end gave no CSID: the notice says "not reported"
    session = ("Nov 23 19:10:41.01: [1]: SESSION BEGIN\n"
               "Nov 23 19:10:41.50: [1]: <-- [16:ATDT15550100001\\r]\n"
               "Nov 23 19:11:02.75: [1]: <-- [5:ATH0\\r]\n")
    assert line_seconds(session) == pytest.approx(21.25)
    assert line_seconds("nothing here") is None


def test_config_and_registry() -> None:
    s = config.load(search=False, environ={}, overrides={
        "dispatch": {"driver": "hylafax"},
        "drivers": {"hylafax": {"port": 14559, "poll_interval": "500ms", "max_call_time": "1h"}}})
    driver = make_driver(s)
    assert isinstance(driver, HylafaxDriver)
    assert driver.channels == frozenset({"fax"}) and driver.lines == 1
    assert s.drivers.hylafax.poll_interval == 0.5 and s.drivers.hylafax.max_call_time == 3600
    with pytest.raises(config.ConfigError, match="drivers.hylafax.retry_owner"):
        config.load(search=False, environ={},
                    overrides={"drivers": {"hylafax": {"retry_owner": "nobody"}}})


def test_unreachable_server_is_a_temporary_provider_error() -> None:
    port = hylafax_env._free_port()
    driver = HylafaxDriver(HylafaxSettings(port=port, timeout=2.0))
    result = asyncio.run(driver.place_call(request("+33170709901")))
    assert result.result == "provider_error" and result.retryable
    assert "cannot reach hfaxd" in (result.error_text or "")
    voice = CallRequest(1, 1, "voice", "+33170709901", "k", sound_seconds=3.0)
    assert asyncio.run(driver.place_call(voice)).result == "provider_error"


# -- the fake Class 2.0 modem: fast outcomes -----------------------------------------------------

def test_delivered_with_pages_csid_and_one_dial(fax: HylafaxEnv) -> None:
    assert fax.modem is not None
    fax.modem.set_modes({"709901": {"mode": "ok", "csid": CSID}})
    result = call(fax, request("+33170709901"))
    assert result.result == "delivered", result
    assert (result.pages_sent, result.csid) == (3, CSID)
    assert result.duration >= 0 and not result.retryable
    q = fax.qfile("doneq", jobid(result))
    assert q["state"] == "7" and q["totpages"] == "3"
    assert q["maxdials"] == "1" and q["maxtries"] == "1"  # mailgw owns the retries
    assert q["number"] == "+33170709901"
    assert [e["pages"] for e in calls_to(fax, "709901")][-1:] == [3]


@pytest.mark.parametrize("mode, expected", [("busy", "busy"), ("nocarrier", "no_answer"),
                                            ("noanswer", "no_answer"),
                                            ("nodialtone", "provider_error")])
def test_failures_are_classified_and_retryable(fax: HylafaxEnv, mode: str,
                                               expected: str) -> None:
    assert fax.modem is not None
    fax.modem.set_modes({"709902": {"mode": mode}})
    before = len(calls_to(fax, "709902"))
    result = call(fax, request("+33170709902"))
    assert (result.result, result.retryable, result.pages_sent) == (expected, True, 0), result
    assert result.error_code == "HYLAFAX-333" and result.error_text
    q = fax.qfile("doneq", jobid(result))
    assert q["state"] == "8" and q["totdials"] == "1"  # exactly one dial, no HylaFAX retry
    assert len(calls_to(fax, "709902")) == before + 1


def test_hangup_after_page_1_then_resume_sends_only_the_rest(fax: HylafaxEnv) -> None:
    assert fax.modem is not None
    fax.modem.set_modes({"709903": {"mode": "drop", "after": 1, "csid": CSID, "times": 1}})
    first = call(fax, request("+33170709903", delivery_id=501))
    assert (first.result, first.pages_sent, first.retryable) == ("line_dropped", 1, True), first
    assert first.csid == CSID

    # mailgw's rule: the retry resumes at page 2; with every retry used up it is partial
    facts = states.DeliveryFacts("fax", 1, 0, 3, datetime.now(UTC))
    step = states.after_call(facts, first, RetrySettings(), datetime.now(UTC))
    assert (step.state, step.pages_sent) == ("queued", 1)
    last = states.DeliveryFacts("fax", 5, 0, 3, datetime.now(UTC))
    step = states.after_call(last, first, RetrySettings(), datetime.now(UTC))
    assert (step.state, step.pages_sent) == ("partial", 1)

    second = call(fax, request("+33170709903", delivery_id=501, attempt=2, first_page=2))
    assert (second.result, second.pages_sent, second.csid) == ("delivered", 2, CSID), second
    q = fax.qfile("doneq", jobid(second))
    assert q["pagerange"] == "2-3" and q["nskip"] == "1"
    assert [e["pages"] for e in calls_to(fax, "709903")][-2:] == [1, 2]  # page 1 not resent


def test_cancel_during_the_call_kills_the_job(fax: HylafaxEnv) -> None:
    assert fax.modem is not None
    fax.modem.set_modes({"709904": {"mode": "hold", "csid": CSID}})

    async def scenario() -> CallResult:
        driver = HylafaxDriver(settings(fax))
        task = asyncio.create_task(driver.place_call(request("+33170709904")))
        await asyncio.to_thread(wait_until, lambda: _holding(fax, "709904"), 60,
                                "the call to reach its last page")
        task.cancel()
        return await task

    try:
        result = asyncio.run(scenario())
    except BaseException:
        print(fax.diagnostics())
        raise
    assert result.result == "cancelled", result
    q = fax.qfile("doneq", jobid(result))
    assert q["state"] == "8" and q["status"] == "Job aborted by request"
    assert not fax.faxsend_pids() or wait_until(lambda: not fax.faxsend_pids(), 20,
                                                "faxsend to end")


def _holding(env: HylafaxEnv, ending: str) -> bool:
    assert env.modem is not None
    return any(e.get("event") == "holding" and e["number"].endswith(ending)
               for e in env.modem.events())


def test_faxq_restarted_mid_job_and_the_outcome_still_arrives(fax: HylafaxEnv) -> None:
    """faxq dies (SIGKILL) during the call and is started again; faxsend finishes the call
    alone. The new faxq finds the job `active`, requeues it and then fails it for too many
    dials (MAXDIALS=1), with every page confirmed in its qfile: the driver reports it
    delivered, and nothing is dialled twice."""
    assert fax.modem is not None
    fax.modem.set_modes({"709905": {"mode": "hold", "csid": CSID}})

    async def scenario() -> CallResult:
        driver = HylafaxDriver(settings(fax))
        task = asyncio.create_task(driver.place_call(request("+33170709905")))
        await asyncio.to_thread(wait_until, lambda: _holding(fax, "709905"), 60,
                                "the call to reach its last page")
        await asyncio.to_thread(fax.crash_faxq)
        (fax.base / "release").touch()
        await asyncio.to_thread(wait_until, lambda: calls_to(fax, "709905"), 30,
                                "the call to end")
        await asyncio.to_thread(fax.start_faxq)
        return await asyncio.wait_for(task, 120)

    try:
        result = asyncio.run(scenario())
    except BaseException:
        print(fax.diagnostics())
        raise
    assert (result.result, result.pages_sent, result.csid) == ("delivered", 3, CSID), result
    assert [c["result"] for c in calls_to(fax, "709905")] == ["ok"]  # one call, no redial


def test_a_replaced_call_adopts_the_existing_job(fax: HylafaxEnv) -> None:
    """After a crash the call is placed again: the job already in HylaFAX is followed (still
    queued) or reported (finished), never submitted twice."""
    assert fax.modem is not None
    fax.modem.set_modes({"709906": {"mode": "ok", "csid": CSID}})
    driver = HylafaxDriver(settings(fax))
    first = request("+33170709906", delivery_id=777)
    crashed = driver._submit(first, driver_tag(first))  # a process that died after JSUBM
    # the reaper gave the delivery back: a new attempt number, same document and number
    again = request("+33170709906", delivery_id=777, attempt=2)
    result = call(fax, again)
    assert result.result == "delivered" and jobid(result) == crashed
    # and once finished, the same call placed again only reports it
    repeat = call(fax, again)
    assert (repeat.result, jobid(repeat), repeat.csid) == ("delivered", crashed, CSID)
    assert len(calls_to(fax, "709906")) == 1


def test_shutdown_leaves_the_fax_on_the_line_and_the_next_start_adopts_it(
        fax: HylafaxEnv) -> None:
    """`mailgw serve` stopping mid-fax (drain → detach → cancel) does not JKILL the job:
    faxq finishes it, and the next start, placing the same call under the same key (the
    lease was handed back without counting an attempt), reports it. One call on the line."""
    assert fax.modem is not None
    fax.modem.set_modes({"709909": {"mode": "hold", "csid": CSID}})
    (fax.base / "release").unlink(missing_ok=True)
    req = request("+33170709909")

    async def stopping() -> None:
        driver = HylafaxDriver(settings(fax))
        task = asyncio.create_task(driver.place_call(req))
        await asyncio.to_thread(wait_until, lambda: _holding(fax, "709909"), 60,
                                "the call to reach its last page")
        driver.detach()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(stopping())
        (fax.base / "release").touch()
        result = call(fax, req)  # the next process
    finally:
        (fax.base / "release").unlink(missing_ok=True)
    assert (result.result, result.pages_sent, result.csid) == ("delivered", 3, CSID), result
    assert [c["result"] for c in calls_to(fax, "709909")] == ["ok"]  # never dialled twice


def driver_tag(req: CallRequest) -> str:
    import hashlib

    fp = hashlib.sha256(req.number.encode() + b"\0" + (req.document or b"")
                        + str(req.first_page).encode()).hexdigest()[:10]
    return f"mailgw:d{req.delivery_id}:{req.idempotency_key}:{fp}"


def test_login_with_password_and_password_file(fax: HylafaxEnv, tmp_path: Path) -> None:
    assert fax.modem is not None
    fax.modem.set_modes({"709907": {"mode": "ok", "csid": CSID}})
    secret = tmp_path / "hylafax.pw"
    secret.write_text(fax.SECURE_PASSWORD + "\n")
    good = call(fax, request("+33170709907"), user=fax.SECURE_USER, password_file=str(secret))
    assert good.result == "delivered" and good.csid == CSID
    assert fax.qfile("doneq", jobid(good))["owner"] == fax.SECURE_USER
    bad = call(fax, request("+33170709907"), user=fax.SECURE_USER, password="wrong")
    assert bad.result == "provider_error" and bad.retryable
    assert "login refused" in (bad.error_text or "")


def test_through_the_pipeline_busy_then_retried(fax: HylafaxEnv, make_app, sink) -> None:
    """smtplib → intake → dispatch (hylafax driver, real faxq/hfaxd) → notice with the CSID."""
    assert fax.modem is not None
    fax.modem.set_modes({"709908": {"mode": "busy", "times": 1, "csid": CSID}},
                        default={"mode": "ok", "csid": CSID})
    app = make_app(dispatch={"driver": "hylafax"},
                   drivers={"hylafax": {"port": fax.port, "user": fax.USER,
                                        "poll_interval": "200ms", "vres": 98}})
    app.add_account()
    pdf = make_pdf(3, label=f"busy {time.time()}")  # its own document: no earlier job matches
    send_mail(app.port, fax_message(f"{PASSWORD}:01 70 70 99 08:HX-1", pdf))
    notice = _notice(sink, 120)
    assert notice["X-Mailgw-State"] == "delivered"
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert CSID in text and "3/3" in text
    with app.store.read() as s:
        d = s.scalars(select(Delivery)).one()
        results = [a.result for a in s.scalars(select(Attempt).order_by(Attempt.id))]
    assert (d.state, d.pages_sent, d.csid) == ("delivered", 3, CSID)
    assert results == ["busy", "delivered"]


def send_mail(port: int, msg: Any) -> None:
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(str(msg["From"]), [str(msg["To"])], raw)


def _notice(sink: Any, timeout: float) -> Any:
    mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                          timeout=timeout, what="the notice")
    return next(m for m in mails if m["X-Mailgw-Kind"] == "notice")


# -- real T.30: HylaFAX's Class 1 driver against a spandsp fax terminal (slow) ---------------

@pytest.fixture(scope="module")
def t30(t31_binary: Path) -> Iterator[HylafaxEnv]:
    yield from running(HylafaxEnv("t31", t31_binary))


@pytest.mark.slow
def test_real_t30_three_pages_through_the_pipeline(t30: HylafaxEnv, make_app, sink) -> None:
    assert t30.modem is not None
    far = "+33 170709921 T30"  # a CSID has at most 20 characters
    t30.modem.set_modes({"709921": {"mode": "ok", "csid": far}})
    app = make_app(dispatch={"driver": "hylafax"},
                   drivers={"hylafax": {"port": t30.port, "user": t30.USER,
                                        "poll_interval": "500ms", "vres": 98}})
    app.add_account()
    started = time.monotonic()
    pdf = make_pdf(3, label=f"t30 {time.time()}")  # its own document: no earlier job matches
    send_mail(app.port, fax_message(f"{PASSWORD}:01 70 70 99 21:T30-1", pdf))
    try:
        notice = _notice(sink, 240)
    except BaseException:
        print(t30.diagnostics())
        raise
    elapsed = time.monotonic() - started
    assert notice["X-Mailgw-State"] == "delivered"
    text = notice.get_body(preferencelist=("plain",)).get_content()
    assert far in text and "3/3" in text
    call_ = [e for e in t30.modem.events() if e.get("number", "").endswith("709921")][-1]
    assert call_["result"] == "ok" and call_["pages"] == 3  # the far end's own count
    assert call_["remote_ident"] == "MAILGW TEST"  # HylaFAX's TSI, as the far end heard it
    rx = Path(call_["file"])
    assert rx.exists() and b"II*\x00" == rx.read_bytes()[:4]  # a TIFF with the pages
    print(f"real T.30: 3 pages, mail to notice in {elapsed:.1f} s")


@pytest.mark.slow
def test_real_t30_busy_and_dropped_line(t30: HylafaxEnv) -> None:
    assert t30.modem is not None
    t30.modem.set_modes({"709922": {"mode": "busy"},
                         "709923": {"mode": "drop", "after": 1, "csid": "DROPPING FAR END"}})
    busy = call(t30, request("+33170709922"))
    assert (busy.result, busy.retryable) == ("busy", True), busy
    dropped = call(t30, request("+33170709923", pages=2, document=make_pdf(2)))
    assert dropped.result == "line_dropped" and dropped.retryable, dropped
    assert dropped.pages_sent == 1 and dropped.csid == "DROPPING FAR END"
