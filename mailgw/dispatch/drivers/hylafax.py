"""The HylaFAX driver: one fax call through a HylaFAX server (hfaxd, client protocol).

The protocol is FTP-like (port 4559), spoken by hylafax_client.py in worker threads, one
short session per step; what a job's files say is read by hylafax_job.py (pure).

One call = one HylaFAX job:
  find   LIST sendq/doneq with JOBFMT: a job tagged (JOBINFO) for this delivery is adopted
         instead of submitting twice (a re-placed call after a crash or a restart);
  submit STOT (the PDF; HylaFAX converts it with Ghostscript), JNEW, JPARM …, JSUBM;
  follow JOB n / JPARM STATE until DONE or FAILED, then RETR doneq/qN: pages sent
         (npages - nskip), the far end's CSID (csi:), the status; the session log
         log/c<commid> gives the time on the line;
  cancel on CancelledError: JKILL (the job ends FAILED "Job aborted by request"), unless
           the daemon is stopping (detach()): then the job stays with faxq and is adopted.

Retries: with retry_owner = "mailgw" (the default) the job gets MAXDIALS=1/MAXTRIES=1, so
HylaFAX dials exactly once per attempt and mailgw's [dispatch.retry] classes decide what
comes next. A partial fax is resumed with PAGERANGE first-last (HylaFAX skips the pages
already delivered). docs/drivers.md tells the operator's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from mailgw.dispatch.drivers.base import (
    CANCELLED,
    DELIVERED,
    PROVIDER_ERROR,
    TIMEOUT,
    CallRequest,
    CallResult,
    Driver,
)
from mailgw.dispatch.drivers.hylafax_client import HylafaxClient
from mailgw.dispatch.drivers.hylafax_job import (
    FINISHED,
    READY_POKE,
    STATE_DONE,
    STATE_FAILED,
    HylafaxError,
    JobFacts,
    classify,
    lasttime,
    line_seconds,
    vres_for,
)
from mailgw.dispatch.drivers.hylafax_recv import poll as poll_recvq
from mailgw.dispatch.drivers.ports import CheckContext, NoReceivedFaxes, ReceivedFaxes
from mailgw.ops.config_types import Duration

log = structlog.get_logger("mailgw.dispatch.hylafax")

NAME = "hylafax"


@dataclass
class HylafaxSettings:
    """A HylaFAX server (hfaxd) spoken to over its client protocol (docs/drivers.md)."""

    host: str = "127.0.0.1"
    port: int = 4559
    user: str = "mailgw"
    password: str = ""  # empty: hosts.hfaxd lets this user in without one
    password_file: str = ""  # read the password from this file instead (first line)
    lines: int = 1  # calls placed at once: the number of modems HylaFAX may use for us
    poll_interval: Duration = 2.0  # how often a job in progress is looked at
    timeout: Duration = 30.0  # every connection and command
    max_call_time: Duration = 7200.0  # a job not done by then is killed (also LASTTIME)
    modem: str = "any"  # JPARM MODEM: a device, a modem class or "any"
    dialstring: str = "{e164}"  # {e164} (+33…, HylaFAX's dial rules localise it) or {digits}
    vres: int = 196  # the highest VRES sent (391 lets `best` go superfine: docs/drivers.md)
    retry_owner: str = "mailgw"  # mailgw: one dial per attempt | hylafax: HylaFAX retries
    max_dials: int = 3  # only with retry_owner = "hylafax"
    max_tries: int = 3  # only with retry_owner = "hylafax"
    tag_prefix: str = "mailgw"  # the job tag (JOBINFO) that finds our jobs after a crash
    retry: str = ""  # this driver's overrides of [dispatch.retry], e.g. "busy=5m"
    # received faxes (recvq) are mailed: how often recvq is looked at (0 = never), and the
    # number they were sent to when the sender gave no subaddress (the line's DID, E.164)
    receive_interval: Duration = 0.0
    receive_number: str = ""

    def problems(self, ctx: CheckContext) -> list[str]:
        out = []
        if self.retry_owner not in ("mailgw", "hylafax"):
            out.append(f"drivers.{NAME}.retry_owner: expected mailgw or hylafax, "
                       f"got {self.retry_owner!r}")
        if "{e164}" not in self.dialstring and "{digits}" not in self.dialstring:
            out.append(f"drivers.{NAME}.dialstring: must contain {{e164}} or {{digits}}")
        return out


def job_params(req: CallRequest, cfg: HylafaxSettings, tag: str, *, mailgw_retries: bool
               ) -> list[tuple[str, str]]:
    """The JPARM lines of one call's job (pure; `_submit` sends them in this order)."""
    digits = req.number.lstrip("+")
    params = [
        ("LASTTIME", lasttime(cfg.max_call_time)),
        ("MAXDIALS", "1" if mailgw_retries else str(cfg.max_dials)),
        ("MAXTRIES", "1" if mailgw_retries else str(cfg.max_tries)),
        ("DIALSTRING", cfg.dialstring.format(e164=f"+{digits}", digits=digits)),
        ("NOTIFY", "NONE"),
        ("VRES", str(vres_for(req.quality, cfg.vres))),
        ("SENDTIME", "NOW"),
        ("JOBINFO", tag),
    ]
    if cfg.modem and cfg.modem != "any":
        params.append(("MODEM", cfg.modem))
    if req.first_page > 1:
        last = req.pages_total or 9999
        params.append(("PAGERANGE", f"{req.first_page}-{last}"))
    return params


class HylafaxDriver(Driver):
    name = NAME
    channels = frozenset({"fax"})
    own_header_line = True  # HylaFAX images its TagLineFormat on every page (docs/fax-pages.md)

    def __init__(self, settings: HylafaxSettings, received: ReceivedFaxes | None = None):
        self.cfg = settings
        self.received = received or NoReceivedFaxes()
        self.receive_interval = settings.receive_interval
        self.lines = settings.lines
        self.retry = settings.retry
        password = settings.password
        if settings.password_file:
            text = Path(settings.password_file).read_text(encoding="utf-8")
            password = text.splitlines()[0].strip() if text else ""
        self.client = HylafaxClient(settings.host, settings.port, settings.user, password,
                                    settings.timeout)
        self.mailgw_retries = settings.retry_owner == "mailgw"
        self.detached = False  # shutting down: leave jobs on the line for the next start

    async def poll_received(self) -> int:
        """recvq through the client protocol (mailgw.dispatch.drivers.hylafax_recv)."""
        source = f"hylafax:{self.cfg.host}:{self.cfg.port}"
        return await asyncio.to_thread(poll_recvq, self.client, self.received, source,
                                       self.cfg.receive_number)

    def detach(self) -> None:
        """Called by the dispatcher before it hands its calls back on shutdown: a fax half
        sent is left to faxq, and the next start adopts it by its tag (same key)."""
        self.detached = True

    def _submit(self, request: CallRequest, tag: str) -> int:
        """Blocking: a new job for this call (its JPARMs from the settings); its job id."""
        assert request.document is not None
        return self.client.submit(request.document, job_params(
            request, self.cfg, tag, mailgw_retries=self.mailgw_retries))

    # -- the call ---------------------------------------------------------------------
    async def place_call(self, request: CallRequest) -> CallResult:
        if request.channel != "fax" or not request.document:
            return CallResult(PROVIDER_ERROR, error_text="the hylafax driver sends faxes only "
                              "(a PDF document is required)")
        fingerprint = hashlib.sha256(request.number.encode() + b"\0" + request.document
                                     + str(request.first_page).encode()).hexdigest()[:10]
        delivery_tag = f"{self.cfg.tag_prefix}:d{request.delivery_id}:"
        tag = f"{delivery_tag}{request.idempotency_key}:{fingerprint}"
        bound = log.bind(delivery_id=request.delivery_id, tag=tag)
        started = time.monotonic()
        try:
            jobid = await asyncio.to_thread(self.client.find, delivery_tag, tag)
            if jobid is not None:
                bound.info("hylafax_job_adopted", jobid=jobid)
            else:
                jobid = await asyncio.to_thread(self._submit, request, tag)
                bound.info("hylafax_job_submitted", jobid=jobid, first_page=request.first_page)
        except HylafaxError as exc:
            bound.warning("hylafax_submit_failed", error=str(exc))
            return CallResult(PROVIDER_ERROR, retryable=True, error_code="HYLAFAX-SUBMIT",
                              error_text=f"HylaFAX: {exc}"[:500])
        try:
            return await self._follow(jobid, started, bound)
        except asyncio.CancelledError:
            if self.detached:
                bound.info("hylafax_job_left_running", jobid=jobid)
                raise
            bound.info("hylafax_job_kill", jobid=jobid)
            return await self._cancelled(jobid, started)

    async def _follow(self, jobid: int, started: float, bound: structlog.BoundLogger
                      ) -> CallResult:
        deadline = started + self.cfg.max_call_time + 300
        ref = f"hylafax-job-{jobid}"
        ready_since: float | None = None
        while True:
            try:
                state, extra = await asyncio.to_thread(self.client.look, jobid)
            except HylafaxError as exc:
                bound.warning("hylafax_poll_failed", jobid=jobid, error=str(exc))
                state, extra = "UNKNOWN", {}
            if state != "READY":
                ready_since = None
            elif ready_since is None:
                ready_since = time.monotonic()
            elif time.monotonic() - ready_since > READY_POKE:
                # faxq 6.0.7 sometimes files a fresh job as READY and then sleeps until its
                # kill time without scheduling it (seen on an idle modem); resubmitting the
                # job wakes it. Harmless when the job only waits for a busy modem.
                with contextlib.suppress(HylafaxError):
                    reply = await asyncio.to_thread(self.client.poke, jobid)
                    bound.warning("hylafax_job_poked", jobid=jobid, reply=reply)
                ready_since = None
            if state in FINISHED:
                facts = await asyncio.to_thread(self.client.facts, jobid)
                if facts is not None and facts.state in (STATE_DONE, STATE_FAILED):
                    return await self._result(facts, started)
            elif state == "GONE":
                return CallResult(PROVIDER_ERROR, provider_ref=ref, retryable=True,
                                  error_code="HYLAFAX-GONE",
                                  error_text=f"HylaFAX job {jobid} vanished: "
                                             f"{extra.get('status', '')}"[:500])
            elif state == "SLEEPING" and self.mailgw_retries and extra.get("totdials", "0") != "0":
                # HylaFAX means to call again by itself: the attempt is over, mailgw decides
                await asyncio.to_thread(self.client.kill, jobid)
                reason = extra.get("status", "").split(";")[0].strip()
                pages = int(extra.get("npages", "0") or 0)
                result, retryable = classify(reason, pages, "")
                return CallResult(result, pages_sent=pages, provider_ref=ref,
                                  retryable=retryable, error_text=reason or None,
                                  duration=time.monotonic() - started)
            if time.monotonic() > deadline:
                with contextlib.suppress(HylafaxError):
                    await asyncio.to_thread(self.client.kill, jobid)
                return CallResult(TIMEOUT, provider_ref=ref, retryable=True,
                                  error_text=f"HylaFAX job {jobid} not done in time")
            await asyncio.sleep(self.cfg.poll_interval)

    async def _result(self, facts: JobFacts, started: float) -> CallResult:
        ref = f"hylafax-job-{facts.jobid}"
        duration: float | None = None
        if facts.commid:
            text = await asyncio.to_thread(self.client.retr, f"log/c{facts.commid}")
            duration = line_seconds(text) if text else None
        if duration is None:
            duration = time.monotonic() - started
        csid = facts.csi or None
        code = f"HYLAFAX-{facts.statuscode}" if facts.statuscode.strip("0") else None
        # DONE; or FAILED with every page confirmed, which HylaFAX 6.0 gives when faxq was
        # restarted during the call (its faxsend finished alone, then the new faxq
        # rejected the job for too many dials)
        if facts.state == STATE_DONE or 0 < facts.totpages <= facts.npages:
            return CallResult(DELIVERED, pages_sent=facts.pages_sent, csid=csid,
                              duration=duration, provider_ref=ref)
        reason = facts.status.split(";")[0].strip() or "failed"
        result, retryable = classify(reason, facts.pages_sent, facts.csi)
        if not self.mailgw_retries and result != PROVIDER_ERROR:
            retryable = False  # HylaFAX has already used its own dials and tries
        return CallResult(result, pages_sent=facts.pages_sent, csid=csid, duration=duration,
                          provider_ref=ref, retryable=retryable, error_code=code,
                          error_text=facts.status[:500] or None)

    async def _cancelled(self, jobid: int, started: float) -> CallResult:
        """JKILL the job and say what it had done. hfaxd answers JKILL once faxsend has let
        go of the modem, which on a real line takes until the next T.30 exchange; the
        wait is bounded by twice `timeout`."""
        ref = f"hylafax-job-{jobid}"
        pages = 0
        deadline = time.monotonic() + 2 * self.cfg.timeout
        try:
            reply = await asyncio.shield(asyncio.to_thread(self.client.kill, jobid))
            log.info("hylafax_job_killed", jobid=jobid, reply=reply)
        except HylafaxError as exc:  # the kill was sent; its answer may just be late
            log.warning("hylafax_kill_unanswered", jobid=jobid, error=str(exc))
        while time.monotonic() < deadline:
            facts = await asyncio.shield(asyncio.to_thread(self.client.facts, jobid))
            if facts is not None and facts.state == STATE_DONE:
                return await self._result(facts, started)  # it got through first
            if facts is not None and facts.state == STATE_FAILED:
                pages = facts.pages_sent
                break
            await asyncio.sleep(min(self.cfg.poll_interval, 0.5))
        return CallResult(CANCELLED, pages_sent=pages, provider_ref=ref,
                          duration=time.monotonic() - started,
                          error_text=f"cancelled: HylaFAX job {jobid} killed")
