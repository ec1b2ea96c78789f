"""The CSV report, in the columns MediasFlow report readers already know.

Streamed: a campaign's 100,000 lines are written a batch of deliveries at a time
(mailgw.store.reports), so the report costs the same memory whatever the job's size.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, object_session

from mailgw.accounts.voice import parse_outcome
from mailgw.store import reports
from mailgw.store import views as rows
from mailgw.store.models import Account, Job

STATUS = {  # delivery state -> (STATUS_CODE, STATUS_TEXT)
    "scheduled": (1, "processing"), "queued": (1, "processing"), "sending": (9, "sending"),
    "delivered": (21, "delivered"), "failed": (117, "not delivered"),
    "partial": (22, "partially delivered"), "cancelled": (30, "cancelled"),
    "expired": (31, "expired"),
}
# Voice: the same codes, and a STATUS_TEXT that says how the call went (accounts.voice outcomes,
# else the last attempt's result).
VOICE_STATUS = {
    "played": "delivered: message played", "played_star": "delivered: message played",
    "transferred": "delivered: transferred (9 pressed)",
    "machine_left": "delivered: answering machine", "dropped": "delivered: voicemail drop",
    "heard_part": "partially delivered: hung up during the message",
    "machine_not_left": "not delivered: answering machine, message not left",
    "machine_no_star": "not delivered: answering machine, message not left",
    "no_star": "not delivered: * not pressed", "no_voicemail": "not delivered: no voicemail",
    "busy": "not delivered: busy", "no_answer": "not delivered: no answer",
    "not_in_service": "not delivered: not in service",
    "line_dropped": "not delivered: call dropped",
}
COLUMNS = ["REF_LIST", "ID_LINE", "INT_NUMBER", "STATUS_CODE", "STATUS_TEXT", "DELIVERYDATE",
           "PAGES", "CSID", "ATTEMPTS"]


def job_csv(s: Session, job_id: int) -> str | None:
    """The whole report as one string (small jobs, tests); `job_csv_chunks` streams it."""
    chunks = job_csv_chunks(s, job_id)
    return None if chunks is None else "".join(chunks)


def job_csv_chunks(s: Session, job_id: int) -> Iterator[str] | None:
    """`;`-separated, with a UTF-8 BOM so Excel opens it right; the list's own columns
    (from an attached CSV or a group import) follow the standard ones. None when there is
    no such job; else the report in chunks of a few thousand lines, read as they are
    written (the session must stay open while they are)."""
    found = rows.job_and_account(s, job_id)
    if found is None:
        return None
    return jobs_csv_chunks(s, [found])


def jobs_csv(found: list[tuple[Job, Account | None]]) -> str:
    """Several jobs in one report (the web space's Sent page exports what it shows): one
    line per number, the jobs one after the other, the lists' own columns joined."""
    if not found:
        return "".join(_chunks(None, []))
    s = object_session(found[0][0])
    assert s is not None, "jobs read in a session"
    return "".join(jobs_csv_chunks(s, found))


def jobs_csv_chunks(s: Session, found: list[tuple[Job, Account | None]]) -> Iterator[str]:
    """`jobs_csv` in chunks: the deliveries are read in batches, never all at once."""
    return _chunks(s, found)


def _chunks(s: Session | None, found: list[tuple[Job, Account | None]]) -> Iterator[str]:
    extra: list[str] = []
    if s is not None and found:
        known = set(COLUMNS)
        for job, _ in found:
            for text in reports.column_sets(s, job.id):
                for key in json.loads(text):
                    if key not in known:
                        known.add(key)
                        extra.append(key)
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    out.write("\ufeff")
    w.writerow(COLUMNS + extra)
    for job, account in found:
        assert s is not None
        tz = ZoneInfo(account.tz if account else "UTC")
        line = 0
        for batch in reports.delivery_batches(s, job.id):
            told = reports.last_attempts(s, [d.id for d in batch]) \
                if job.channel == "voice" else {}
            for d in batch:
                line += 1
                standard = _line(job, tz, line, d, told.get(d.id))
                cols = json.loads(d.columns) if d.columns else {}
                w.writerow(standard + [cols.get(k, "") for k in extra])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _line(job: Job, tz: ZoneInfo, line: int, d: reports.ReportRow,
          last: tuple[str, str | None] | None) -> list[object]:
    code, text = STATUS.get(d.state, (1, d.state))
    if job.channel == "voice" and d.state in ("delivered", "partial", "failed") and last:
        told = parse_outcome(last[1])
        text = VOICE_STATUS.get(told[0] if told else last[0], text)
    when = d.finished_at.astimezone(tz).strftime("%d/%m/%Y %H:%M:%S") if (
        d.finished_at and d.state in ("delivered", "partial")) else ""
    pages = d.pages_sent if d.pages_total else ""
    return [job.ref or job.id, line, d.number.lstrip("+"), code, text, when, pages,
            d.csid or "", d.attempts]
