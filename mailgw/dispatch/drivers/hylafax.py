"""The HylaFAX driver: one fax call through a HylaFAX server (hfaxd, client protocol).

The protocol is FTP-like (port 4559). Each step opens its own short session in a worker
thread (stdlib ftplib, every socket operation bounded by `timeout`): hfaxd caches a job's
state inside a session, and one failed RETR can leave a session's data channel unusable,
so fresh sessions are the reliable way to watch a job.

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
import ftplib
import hashlib
import io
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from mailgw.dispatch.drivers.base import (
    BUSY,
    CANCELLED,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PROVIDER_ERROR,
    TIMEOUT,
    CallRequest,
    CallResult,
)
from mailgw.ops.config import HylafaxSettings

log = structlog.get_logger("mailgw.dispatch.hylafax")

FINISHED = ("DONE", "FAILED")
ADOPT_WINDOW = 6 * 3600.0  # a finished job older than this is never taken for ours
READY_POKE = 20.0  # seconds a job may stay READY before faxq is nudged (see _follow)
STATE_DONE, STATE_FAILED = 7, 8
ABORTED = "job aborted by request"
# JobFmt %a letters: undefined, suspended, pending, sleeping, blocked, ready, active, done, failed
SUSPENDED_LETTER, DONE_LETTER = "T", "D"
JOBFMT = '"%j|%a|%J"'


class HylafaxError(Exception):
    """The server could not be reached or refused a command."""


@dataclass(frozen=True)
class JobFacts:
    """What a finished HylaFAX job says (its doneq qfile)."""

    jobid: int
    state: int
    status: str
    statuscode: str
    npages: int
    nskip: int
    totpages: int
    csi: str
    commid: str
    tts: int = 0  # when it was (last) due to be sent, Unix time

    @property
    def pages_sent(self) -> int:
        return max(self.npages - self.nskip, 0)


def parse_qfile(jobid: int, text: str) -> JobFacts:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key not in values:
            values[key] = value.strip()

    def num(key: str) -> int:
        try:
            return int(values.get(key, "0") or 0)
        except ValueError:
            return 0

    return JobFacts(jobid, num("state"), values.get("status", ""),
                    values.get("statuscode", ""), num("npages"), num("nskip"),
                    num("totpages"), _csid(values.get("csi", "")), values.get("commid", ""),
                    num("tts"))


def lasttime(seconds: float) -> str:
    """JPARM LASTTIME is a relative DDHHMM."""
    minutes = max(int(math.ceil(seconds / 60)), 1)
    days, rest = divmod(minutes, 1440)
    return f"{min(days, 99):02d}{rest // 60:02d}{rest % 60:02d}"


def _csid(value: str) -> str:
    """HylaFAX writes `<UNSPECIFIED>` when the far end sent no CSI: that is "not reported"."""
    value = value.strip()
    return "" if value.upper() in ("<UNSPECIFIED>", "UNSPECIFIED") else value


def classify(reason: str, pages: int, csid: str) -> tuple[str, bool]:
    """A failed job's status text → (result, retryable in principle)."""
    r = reason.lower()
    if ABORTED in r:
        return CANCELLED, False
    if "busy" in r:
        return BUSY, True
    if "kill time expired" in r:
        return TIMEOUT, True
    if "dialtone" in r:
        return PROVIDER_ERROR, True  # our own line is dead, not the recipient's fault
    if "no answer" in r or "no carrier" in r or "ring" in r:
        return NO_ANSWER, True
    if pages > 0:
        return LINE_DROPPED, True
    if any(w in r for w in ("voice", "t.4 receiver", "not a fax", "data modem")):
        return NOT_FAX, False
    if any(w in r for w in ("rejected by", "blacklist", "not in service", "invalid number")):
        return NOT_IN_SERVICE, False
    if csid or any(w in r for w in ("mps", "eop", "eom", "dcs", "tcf", "train", "disconnect",
                                    "hangup", "phase", "response", "rtn", "ppr", "carrier")):
        return LINE_DROPPED, True
    if any(w in r for w in ("convert", "conversion", "document", "format", "image")):
        return PROVIDER_ERROR, False
    return PROVIDER_ERROR, True


_LOG_TIME = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d(?:\.\d+)?): ")


def line_seconds(session_log: str) -> float | None:
    """Time on the line from a session log (log/c<commid>): the dial to the last line."""
    stamps: list[datetime] = []
    dialled = False
    for line in session_log.splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        if not dialled and "ATD" not in line:
            continue
        dialled = True
        text = m.group(1)
        with contextlib.suppress(ValueError):
            fmt = "%b %d %H:%M:%S.%f" if "." in text else "%b %d %H:%M:%S"
            stamps.append(datetime.strptime("2000 " + " ".join(text.split()), "%Y " + fmt))
    if len(stamps) < 2:
        return None
    seconds = (stamps[-1] - stamps[0]).total_seconds()
    return seconds if seconds >= 0 else seconds + 86400 * 366  # across a new year: rare


# The job's VRES for each quality (mailgw.documents.quality): lines per inch as HylaFAX counts them
# (superfine is 391, T.30's "R8 × 15.4 l/mm"). `vres` in the settings caps it.
VRES = {"normal": 98, "high": 196, "best": 391}


def vres_for(quality: str, cap: int) -> int:
    """The VRES a job is sent at: its quality's, at most the server's `vres` (pure)."""
    return min(VRES.get(quality, VRES["high"]), cap)


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


class HylafaxDriver:
    name = "hylafax"
    channels = frozenset({"fax"})
    own_header_line = True  # HylaFAX images its TagLineFormat on every page (docs/fax-pages.md)

    def __init__(self, settings: HylafaxSettings):
        self.cfg = settings
        self.lines = settings.lines
        self.password = settings.password
        if settings.password_file:
            text = Path(settings.password_file).read_text(encoding="utf-8")
            self.password = text.splitlines()[0].strip() if text else ""
        self.mailgw_retries = settings.retry_owner == "mailgw"
        self.detached = False  # shutting down: leave jobs on the line for the next start

    def detach(self) -> None:
        """Called by the dispatcher before it hands its calls back on shutdown: a fax half
        sent is left to faxq, and the next start adopts it by its tag (same key)."""
        self.detached = True

    # -- the protocol (blocking: runs in worker threads) -------------------------------
    @contextlib.contextmanager
    def _session(self) -> Iterator[ftplib.FTP]:
        ftp = ftplib.FTP(timeout=self.cfg.timeout, encoding="latin-1")
        try:
            try:
                ftp.connect(self.cfg.host, self.cfg.port, timeout=self.cfg.timeout)
                reply = ftp.sendcmd(f"USER {self.cfg.user}")
                if reply.startswith("3"):
                    ftp.sendcmd(f"PASS {self.password}")
            except ftplib.error_perm as exc:
                raise HylafaxError(f"login refused for {self.cfg.user}: {exc}") from exc
            except (OSError, EOFError, ftplib.Error) as exc:
                raise HylafaxError(f"cannot reach hfaxd at {self.cfg.host}:{self.cfg.port}: "
                                   f"{exc}") from exc
            try:
                yield ftp
            except (OSError, EOFError, ftplib.Error) as exc:
                raise HylafaxError(str(exc)) from exc
        finally:
            if ftp.sock is not None:
                with contextlib.suppress(OSError, EOFError, ftplib.Error):
                    ftp.quit()
            ftp.close()

    def _find(self, delivery_tag: str, tag: str) -> int | None:
        """A job of ours for this call: one still queued for the delivery, or this very call
        already finished (not killed). Returns its job id."""
        with self._session() as ftp:
            ftp.sendcmd(f"JOBFMT {JOBFMT}")
            found: dict[str, list[str]] = {}
            for queue in ("sendq", "doneq"):
                lines: list[str] = []
                ftp.retrlines(f"LIST {queue}", lines.append)
                found[queue] = lines
        fingerprint = ":" + tag.rsplit(":", 1)[1]

        def same(jobtag: str) -> bool:  # the same delivery, document, number and first page
            return jobtag.startswith(delivery_tag) and jobtag.endswith(fingerprint)

        for line in found["sendq"]:
            jobid, state, jobtag = (line.split("|", 2) + ["", ""])[:3]
            jobtag = jobtag.strip()
            # this call, or an earlier attempt of the delivery whose result was never
            # recorded: follow it, do not dial twice
            if jobtag == tag or same(jobtag):
                if state.strip() != SUSPENDED_LETTER and jobid.strip().isdigit():
                    return int(jobid)
        for line in found["doneq"]:
            jobid, state, jobtag = (line.split("|", 2) + ["", ""])[:3]
            jobtag = jobtag.strip()
            if not jobid.strip().isdigit():
                continue
            # this very call, finished (unless we killed it: then it is placed anew); or a
            # job of the delivery that got every page through (mailgw never calls again
            # after a recorded delivery, so its result was lost in a crash)
            if jobtag == tag or (state.strip() == DONE_LETTER and same(jobtag)):
                facts = self._facts(int(jobid))
                if (facts is not None and ABORTED not in facts.status.lower()
                        and time.time() - facts.tts < ADOPT_WINDOW):
                    return int(jobid)
        return None

    def _submit(self, req: CallRequest, tag: str) -> int:
        assert req.document is not None
        params = job_params(req, self.cfg, tag, mailgw_retries=self.mailgw_retries)
        with self._session() as ftp:
            ftp.voidcmd("TYPE I")
            reply = ftp.storbinary("STOT", io.BytesIO(req.document))
            m = re.search(r"FILE:\s*([^\s)]+)", reply)
            if not m:
                raise HylafaxError(f"STOT gave no file name: {reply}")
            created = ftp.sendcmd("JNEW")
            job = re.search(r"jobid:\s*(\d+)", created)
            if not job:
                raise HylafaxError(f"JNEW gave no job id: {created}")
            for key, value in params:
                ftp.sendcmd(f"JPARM {key} {value}")
            ftp.sendcmd(f"JPARM DOCUMENT {m.group(1)}")
            ftp.sendcmd("JSUBM")
            return int(job.group(1))

    def _look(self, jobid: int) -> tuple[str, dict[str, str]]:
        """The job's state (READY, ACTIVE, SLEEPING, DONE, FAILED …) and, while it sleeps,
        what its last call did."""
        with self._session() as ftp:
            try:
                ftp.sendcmd(f"JOB {jobid}")
            except ftplib.error_perm as exc:
                return "GONE", {"status": str(exc)}
            state = ftp.sendcmd("JPARM STATE")[4:].strip().upper()
            extra: dict[str, str] = {}
            if state == "SLEEPING":
                for key in ("STATUS", "TOTDIALS", "NPAGES"):
                    extra[key.lower()] = ftp.sendcmd(f"JPARM {key}")[4:].strip()
            return state, extra

    def _retr(self, path: str) -> str | None:
        """One file over the protocol, in a session of its own (a failed RETR spoils it)."""
        try:
            with self._session() as ftp:
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {path}", buf.write)
                return buf.getvalue().decode("latin-1")
        except HylafaxError:
            return None

    def _facts(self, jobid: int) -> JobFacts | None:
        text = self._retr(f"doneq/q{jobid}")
        return parse_qfile(jobid, text) if text else None

    def _poke(self, jobid: int) -> str:
        """JSUSP + JSUBM: hfaxd hands the job to faxq again, which wakes its scheduler."""
        with self._session() as ftp:
            try:
                ftp.sendcmd(f"JOB {jobid}")
                ftp.sendcmd("JSUSP")
                return ftp.sendcmd("JSUBM")
            except ftplib.error_perm as exc:
                return str(exc)  # it started meanwhile: nothing to do

    def _kill(self, jobid: int) -> str:
        with self._session() as ftp:
            try:
                ftp.sendcmd(f"JOB {jobid}")
                return ftp.sendcmd("JKILL")
            except ftplib.error_perm as exc:
                return str(exc)  # already done, or gone

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
            jobid = await asyncio.to_thread(self._find, delivery_tag, tag)
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
                state, extra = await asyncio.to_thread(self._look, jobid)
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
                    reply = await asyncio.to_thread(self._poke, jobid)
                    bound.warning("hylafax_job_poked", jobid=jobid, reply=reply)
                ready_since = None
            if state in FINISHED:
                facts = await asyncio.to_thread(self._facts, jobid)
                if facts is not None and facts.state in (STATE_DONE, STATE_FAILED):
                    return await self._result(facts, started)
            elif state == "GONE":
                return CallResult(PROVIDER_ERROR, provider_ref=ref, retryable=True,
                                  error_code="HYLAFAX-GONE",
                                  error_text=f"HylaFAX job {jobid} vanished: "
                                             f"{extra.get('status', '')}"[:500])
            elif state == "SLEEPING" and self.mailgw_retries and extra.get("totdials", "0") != "0":
                # HylaFAX means to call again by itself: the attempt is over, mailgw decides
                await asyncio.to_thread(self._kill, jobid)
                reason = extra.get("status", "").split(";")[0].strip()
                pages = int(extra.get("npages", "0") or 0)
                result, retryable = classify(reason, pages, "")
                return CallResult(result, pages_sent=pages, provider_ref=ref,
                                  retryable=retryable, error_text=reason or None,
                                  duration=time.monotonic() - started)
            if time.monotonic() > deadline:
                with contextlib.suppress(HylafaxError):
                    await asyncio.to_thread(self._kill, jobid)
                return CallResult(TIMEOUT, provider_ref=ref, retryable=True,
                                  error_text=f"HylaFAX job {jobid} not done in time")
            await asyncio.sleep(self.cfg.poll_interval)

    async def _result(self, facts: JobFacts, started: float) -> CallResult:
        ref = f"hylafax-job-{facts.jobid}"
        duration: float | None = None
        if facts.commid:
            text = await asyncio.to_thread(self._retr, f"log/c{facts.commid}")
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
            reply = await asyncio.shield(asyncio.to_thread(self._kill, jobid))
            log.info("hylafax_job_killed", jobid=jobid, reply=reply)
        except HylafaxError as exc:  # the kill was sent; its answer may just be late
            log.warning("hylafax_kill_unanswered", jobid=jobid, error=str(exc))
        while time.monotonic() < deadline:
            facts = await asyncio.shield(asyncio.to_thread(self._facts, jobid))
            if facts is not None and facts.state == STATE_DONE:
                return await self._result(facts, started)  # it got through first
            if facts is not None and facts.state == STATE_FAILED:
                pages = facts.pages_sent
                break
            await asyncio.sleep(min(self.cfg.poll_interval, 0.5))
        return CallResult(CANCELLED, pages_sent=pages, provider_ref=ref,
                          duration=time.monotonic() - started,
                          error_text=f"cancelled: HylaFAX job {jobid} killed")
