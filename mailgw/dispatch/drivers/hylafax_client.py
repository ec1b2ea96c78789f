"""The HylaFAX client protocol (hfaxd, FTP-like, port 4559), blocking: the driver runs
each step in a worker thread. Each step opens its own short session (stdlib ftplib, every
socket operation bounded by `timeout`): hfaxd caches a job's state inside a session, and
one failed RETR can leave a session's data channel unusable."""

from __future__ import annotations

import contextlib
import ftplib
import io
import re
import time
from collections.abc import Iterator

from mailgw.dispatch.drivers.hylafax_job import (
    ABORTED,
    ADOPT_WINDOW,
    DONE_LETTER,
    JOBFMT,
    SUSPENDED_LETTER,
    HylafaxError,
    JobFacts,
    parse_qfile,
)


class HylafaxClient:
    """One hfaxd server, spoken to as one user."""

    def __init__(self, host: str, port: int, user: str, password: str, timeout: float):
        self.host, self.port, self.user = host, port, user
        self.password = password
        self.timeout = timeout

    @contextlib.contextmanager
    def session(self) -> Iterator[ftplib.FTP]:
        ftp = ftplib.FTP(timeout=self.timeout, encoding="latin-1")
        try:
            try:
                ftp.connect(self.host, self.port, timeout=self.timeout)
                reply = ftp.sendcmd(f"USER {self.user}")
                if reply.startswith("3"):
                    ftp.sendcmd(f"PASS {self.password}")
            except ftplib.error_perm as exc:
                raise HylafaxError(f"login refused for {self.user}: {exc}") from exc
            except (OSError, EOFError, ftplib.Error) as exc:
                raise HylafaxError(f"cannot reach hfaxd at {self.host}:{self.port}: {exc}"
                                   ) from exc
            try:
                yield ftp
            except (OSError, EOFError, ftplib.Error) as exc:
                raise HylafaxError(str(exc)) from exc
        finally:
            if ftp.sock is not None:
                with contextlib.suppress(OSError, EOFError, ftplib.Error):
                    ftp.quit()
            ftp.close()

    def find(self, delivery_tag: str, tag: str) -> int | None:
        """A job of ours for this call: one still queued for the delivery, or this very call
        already finished (not killed). Returns its job id."""
        with self.session() as ftp:
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
                facts = self.facts(int(jobid))
                if (facts is not None and ABORTED not in facts.status.lower()
                        and time.time() - facts.tts < ADOPT_WINDOW):
                    return int(jobid)
        return None

    def submit(self, document: bytes, params: list[tuple[str, str]]) -> int:
        """A new job: the document, then its JPARM lines in order; returns its job id."""
        with self.session() as ftp:
            ftp.voidcmd("TYPE I")
            reply = ftp.storbinary("STOT", io.BytesIO(document))
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

    def look(self, jobid: int) -> tuple[str, dict[str, str]]:
        """The job's state (READY, ACTIVE, SLEEPING, DONE, FAILED …) and, while it sleeps,
        what its last call did."""
        with self.session() as ftp:
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

    def retr(self, path: str) -> str | None:
        """One file over the protocol, in a session of its own (a failed RETR spoils it)."""
        try:
            with self.session() as ftp:
                buf = io.BytesIO()
                ftp.retrbinary(f"RETR {path}", buf.write)
                return buf.getvalue().decode("latin-1")
        except HylafaxError:
            return None

    def retr_bytes(self, path: str) -> bytes | None:
        """A binary file (a received TIFF), in a session of its own."""
        try:
            with self.session() as ftp:
                buf = io.BytesIO()
                ftp.voidcmd("TYPE I")
                ftp.retrbinary(f"RETR {path}", buf.write)
                return buf.getvalue()
        except HylafaxError:
            return None

    def facts(self, jobid: int) -> JobFacts | None:
        text = self.retr(f"doneq/q{jobid}")
        return parse_qfile(jobid, text) if text else None

    def poke(self, jobid: int) -> str:
        """JSUSP + JSUBM: hfaxd hands the job to faxq again, which wakes its scheduler."""
        with self.session() as ftp:
            try:
                ftp.sendcmd(f"JOB {jobid}")
                ftp.sendcmd("JSUSP")
                return ftp.sendcmd("JSUBM")
            except ftplib.error_perm as exc:
                return str(exc)  # it started meanwhile: nothing to do

    def kill(self, jobid: int) -> str:
        with self.session() as ftp:
            try:
                ftp.sendcmd(f"JOB {jobid}")
                return ftp.sendcmd("JKILL")
            except ftplib.error_perm as exc:
                return str(exc)  # already done, or gone
