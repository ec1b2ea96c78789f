"""The CSV report, in the columns MediasFlow report readers already know."""

from __future__ import annotations

import csv
import io
import json
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from mailgw.accounts.voice import parse_outcome
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
    """`;`-separated, with a UTF-8 BOM so Excel opens it right; the list's own columns
    (from an attached CSV or a group import) follow the standard ones."""
    found = rows.job_and_account(s, job_id)
    if found is None:
        return None
    return jobs_csv([found])


def jobs_csv(found: list[tuple[Job, Account | None]]) -> str:
    """Several jobs in one report (the web space's Sent page exports what it shows): one
    line per number, the jobs one after the other, the lists' own columns joined."""
    extra: list[str] = []
    lines: list[tuple[list[object], dict[str, str]]] = []
    for job, account in found:
        for standard, cols in _lines(job, account):
            extra += [k for k in cols if k not in extra and k not in COLUMNS]
            lines.append((standard, cols))
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(COLUMNS + extra)
    for standard, cols in lines:
        w.writerow(standard + [cols.get(k, "") for k in extra])
    return out.getvalue()


def _lines(job: Job, account: Account | None) -> list[tuple[list[object], dict[str, str]]]:
    tz = ZoneInfo(account.tz if account else "UTC")
    out: list[tuple[list[object], dict[str, str]]] = []
    for line, d in enumerate(job.deliveries, start=1):
        cols = json.loads(d.columns) if d.columns else {}
        code, text = STATUS.get(d.state, (1, d.state))
        if job.channel == "voice" and d.state in ("delivered", "partial", "failed") and (
                d.attempt_rows):
            last = d.attempt_rows[-1]
            told = parse_outcome(last.error_text)
            text = VOICE_STATUS.get(told[0] if told else last.result, text)
        when = d.finished_at.astimezone(tz).strftime("%d/%m/%Y %H:%M:%S") if (
            d.finished_at and d.state in ("delivered", "partial")) else ""
        pages = d.pages_sent if d.pages_total else ""
        out.append(([job.ref or job.id, line, d.number.lstrip("+"), code, text, when, pages,
                     d.csid or "", d.attempts], cols))
    return out
