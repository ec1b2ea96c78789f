"""What each mail says: the context of an ack and of a per-recipient notice.

Called inside the transaction that causes the mail, so the mail and the change commit together.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

import phonenumbers
from sqlalchemy.orm import Session

from mailgw.accounts.notices import effective
from mailgw.accounts.voice import describe as describe_voice
from mailgw.accounts.voice import job_options
from mailgw.codes import Code, is_accepted, sentence
from mailgw.documents import quality as qualities
from mailgw.jobs.reports import job_csv_chunks
from mailgw.notify.outbox import WEBHOOK, enqueue
from mailgw.notify.render import Rendered, Renderer
from mailgw.notify.report_file import Attachment, report_attachment
from mailgw.notify.words import TONES, badge, local_time, words
from mailgw.ops.config import Settings
from mailgw.store import outbox as outbox_rows
from mailgw.store import reports as report_rows
from mailgw.store import views as rows
from mailgw.store.models import Account, Attempt, Delivery, Job
from mailgw.vocab import DELIVERED, FINAL, OUTCOME_WORD, PARTIAL


@lru_cache(maxsize=4096)
def international(number: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(number),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return number


# An ack names this many numbers (and invalid ones), then how many more: a campaign's
# 100,000 would take seconds to format before the 250 and make a mail nobody reads.
ACK_NUMBERS = 200
SUMMARY_LINES = 200  # numbers a summary lists; the attached report has them all


class SummaryLine(Protocol):
    """What a summary shows of a delivery (a Delivery, or a store.reports.ReportRow)."""

    @property
    def number(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def pages_sent(self) -> int: ...
    @property
    def pages_total(self) -> int | None: ...
    @property
    def csid(self) -> str | None: ...
PREVIEW_CID = "page-1@preview.mailgw"  # the first page's Content-ID in a preview's ack
PREVIEW_PDF = "preview.pdf"


@dataclass(frozen=True)
class AckFacts:
    code: int
    to: str
    lang: str
    tz: str
    channel: str
    received: datetime
    original_subject: str | None
    original_message_id: str | None
    job_ids: Sequence[int] = ()
    numbers: Sequence[str] = ()
    invalid_numbers: Sequence[str] = ()
    duplicates: int = 0
    pages: int | None = None
    documents: Sequence[str] = ()
    ignored: Sequence[str] = ()
    send_at: datetime | None = None
    ref: str | None = None
    comment: str | None = None
    detail: str = ""
    quality: str | None = None  # an accepted fax's (mailgw.documents.quality)
    preview: bool = False  # nothing dialled: the pages are shown (mailgw.intake.trial)
    preview_png: bytes | None = None  # its first page, shown inline (cid:)
    preview_pdf: bytes | None = None  # all its pages, attached


def quality_words(quality: str | None, w: dict[str, str]) -> dict[str, str]:
    """The template's `quality` ("high", or its fr/ru name) and `quality_dpi` ("204×196");
    empty for a voice job or a refusal."""
    if not quality:
        return {"quality": "", "quality_dpi": ""}
    return {"quality": w.get("quality_" + quality, quality), "quality_dpi": qualities.dpi(quality)}


def _ack_badge(f: AckFacts, w: dict[str, str]) -> dict[str, str]:
    if f.preview:
        return badge("info", w["ack_preview"])
    if f.code == Code.CANCELLED:
        return badge("neutral", w["cancelled"])
    return badge("ok", w["ack_accepted"]) if is_accepted(f.code) else \
        badge("bad", w["ack_refused"])


def ack_mail(renderer: Renderer, f: AckFacts) -> Rendered:
    w = words(f.lang)
    one_job = len(f.job_ids) == 1 and is_accepted(f.code) and not f.preview
    ctx = {
        "code": f.code, "sentence": sentence(f.code, f.lang, preview=f.preview),
        "accepted": is_accepted(f.code),
        "cancel": f.code == Code.CANCELLED,
        "detail": f.detail, "channel": f.channel, "channel_word": w[f.channel],
        "received": local_time(f.received, f.tz, f.lang),
        "original_subject": f.original_subject, "job_ids": list(f.job_ids),
        "numbers": [international(n) for n in f.numbers[:ACK_NUMBERS]],
        "numbers_more": max(len(f.numbers) - ACK_NUMBERS, 0),
        "invalid_numbers": list(f.invalid_numbers[:ACK_NUMBERS]),
        "invalid_numbers_more": max(len(f.invalid_numbers) - ACK_NUMBERS, 0),
        "duplicates": f.duplicates,
        "pages": f.pages, "documents": list(f.documents), "ignored": list(f.ignored),
        "send_at": local_time(f.send_at, f.tz, f.lang) if f.send_at else "",
        "ref": f.ref, "comment": f.comment, **quality_words(f.quality, w),
        "preview": f.preview, "preview_cid": PREVIEW_CID if f.preview_png else "",
        "preview_pdf": PREVIEW_PDF if f.preview_pdf else "",
        "link": renderer.job_link(f.job_ids[0]) if one_job else "", **_ack_badge(f, w),
    }
    headers = {"X-Mailgw-Code": str(f.code)}
    if f.job_ids:
        headers["X-Mailgw-Job"] = ",".join(str(j) for j in f.job_ids)
    if f.preview:
        headers["X-Mailgw-Preview"] = "yes"
    inline = [(PREVIEW_CID, f.preview_png, "image", "png", "page-1.png")] \
        if f.preview_png else None
    attachments = [(PREVIEW_PDF, f.preview_pdf, "application", "pdf")] \
        if f.preview_pdf else None
    return renderer.render("ack", "ack", f.lang, f.to, ctx, headers, f.original_message_id,
                           attachments, inline=inline)


def _duration(seconds: float, lang: str) -> str:
    """A call's length in the reader's words; empty under half a second (a call that never
    connected, or the simulator at a demo's speed) rather than a puzzling "0 s"."""
    seconds = round(seconds)
    if seconds <= 0:
        return ""
    minutes, secs = divmod(seconds, 60)
    w = words(lang)
    return w["minutes"].format(m=minutes, s=secs) if minutes else w["seconds"].format(s=secs)


def attempt_reason(a: Attempt, channel: str, w: dict[str, str]) -> str:
    """Why a call ended, in plain words of the account's language."""
    if channel == "voice":  # who answered, what was heard or left (mailgw.accounts.voice)
        told = describe_voice(a.error_text, w)
        if told:
            return told
    if a.result == "delivered":
        return w["ok"]
    if a.result == "line_dropped" and channel == "fax":
        return w["dropped_at"].format(page=a.first_page + a.pages_sent)
    reason = w.get(a.result, a.result)
    if a.result == "provider_error" and a.error_code:
        reason += f" ({a.error_code})"
    return reason


def notice_mail(renderer: Renderer, job: Job, delivery: Delivery, attempts: Sequence[Attempt],
                account: Account, *, base_url: str = "", to: str | None = None) -> Rendered:
    """The notice for a delivery that reached a final state."""
    lang, tz = account.lang, account.tz
    w = words(lang)
    rows = []
    for a in attempts:
        reason = attempt_reason(a, job.channel, w)
        pages = ""
        if job.channel == "fax" and a.pages_sent:
            pages = w["pages"].format(a=a.first_page, b=a.first_page + a.pages_sent - 1)
        rows.append({"started": local_time(a.started_at, tz, lang), "reason": reason,
                     "pages": pages, "result": a.result})
    failure = ""
    if delivery.state in ("failed", "partial", "expired") and attempts:
        parts = []
        if len(attempts) > 1:
            again = len(attempts) - 1
            parts.append(w["retried_once"] if again == 1 else w["retried"].format(n=again))
        end = local_time(delivery.finished_at or attempts[-1].ended_at, tz, lang)
        parts.append(w["expired_at" if delivery.state == "expired" else "gave_up"].format(t=end))
        failure = " ".join(parts)
    delivered_attempt = next((a for a in reversed(attempts) if a.result == "delivered"), None)
    detail = delivered_attempt.error_text if delivered_attempt else ""
    if job.channel == "voice" and attempts:
        detail = describe_voice(attempts[-1].error_text, w) or detail
    ctx = {
        "state": delivery.state, "state_word": w.get(delivery.state, delivery.state),
        "channel": job.channel, "channel_word": w[job.channel],
        "original_subject": job.subject, "comment": job.comment, "ref": job.ref,
        "number": international(delivery.number), "csid": delivery.csid,
        "pages_sent": delivery.pages_sent, "pages_total": delivery.pages_total or 0,
        "submitted": local_time(job.created_at, tz, lang),
        "sent": local_time(attempts[0].started_at, tz, lang) if attempts else "",
        "delivered_at": local_time(delivery.finished_at, tz, lang)
        if delivery.state in ("delivered", "partial") else "",
        "duration": _duration(sum(a.duration for a in attempts), lang),
        "job_id": job.id, "attempts": rows, "failure": failure, "detail": detail or "",
        "link": f"{base_url.rstrip('/')}/jobs/{job.id}" if base_url else renderer.job_link(job.id),
        **badge(TONES.get(delivery.state, "neutral"), w.get(delivery.state, delivery.state)),
        **quality_words(qualities.of_options(job_options(job))
                        if job.channel == "fax" else None, w),
    }
    headers = {"X-Mailgw-Job": str(job.id), "X-Mailgw-State": delivery.state}
    return renderer.render("notice", "notice", lang, to or job.sender, ctx, headers,
                           job.message_id)


def summary_mail(renderer: Renderer, job: Job, deliveries: Sequence[SummaryLine],
                 account: Account, csv_report: str | Attachment, *, to: str | None = None,
                 counts: dict[str, int] | None = None) -> Rendered:
    """One mail for a whole job once every delivery is final, the CSV report attached.

    `deliveries` are the lines shown (the first SUMMARY_LINES are); `counts` (deliveries per
    state) covers them all when given, so a campaign's 100,000 need not be loaded.
    `csv_report` is the report as text or a ready attachment (`report_attachment`)."""
    lang, tz = account.lang, account.tz
    w = words(lang)
    if counts is None:
        counts = {}
        for d in deliveries:
            counts[d.state] = counts.get(d.state, 0) + 1
    total = sum(counts.values())
    final = sum(n for state, n in counts.items() if state in FINAL)
    word = OUTCOME_WORD[job.outcome]
    local_word = w["partial_job" if job.outcome == "partial" else job.outcome]
    ctx = {
        "job_id": job.id, "channel": job.channel, "channel_word": w[job.channel],
        "original_subject": job.subject, "comment": job.comment, "ref": job.ref,
        "outcome": job.outcome, "outcome_word": word, "outcome_local": local_word,
        "counts": [(w.get(state, state), n) for state, n in sorted(counts.items())],
        "total": total, "final": final,
        "reached": counts.get(DELIVERED, 0) + counts.get(PARTIAL, 0),
        "submitted": local_time(job.created_at, tz, lang),
        "finished": local_time(job.finished_at, tz, lang),
        "lines": [{"number": international(d.number), "state": w.get(d.state, d.state),
                   "pages": f"{d.pages_sent}/{d.pages_total}" if d.pages_total else "",
                   "csid": d.csid or "", "tone": TONES.get(d.state, "info")}
                  for d in deliveries[:SUMMARY_LINES]],
        "more": max(total - SUMMARY_LINES, 0), "link": renderer.job_link(job.id),
        **badge(TONES[job.outcome], local_word),
    }
    headers = {"X-Mailgw-Job": str(job.id), "X-Mailgw-Outcome": word}
    attachment = csv_report if isinstance(csv_report, tuple) else (
        f"report-{job.id}.csv", csv_report.encode("utf-8"), "text", "csv")  # with its BOM
    return renderer.render("summary", "summary", lang, to or job.sender, ctx, headers,
                           job.message_id, [attachment])


def webhook_event(event: str, job: Job, delivery: Delivery | None) -> bytes:
    """The JSON body of a webhook call (signed when sent, see notify.outbox.sign)."""
    data: dict[str, object] = {"event": event, "job": {"id": job.id, "channel": job.channel,
                                                       "state": job.state,
                                                       "outcome": job.outcome, "ref": job.ref}}
    if delivery is not None:
        data["delivery"] = {"id": delivery.id, "number": delivery.number,
                            "state": delivery.state, "pages_sent": delivery.pages_sent,
                            "pages_total": delivery.pages_total, "csid": delivery.csid,
                            "attempts": delivery.attempts}
    return json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")


def notice_on_final(settings: Settings, renderer: Renderer
                    ) -> Callable[[Session, Job, Delivery], None]:
    """What happens, in the same transaction, when a delivery becomes final: its notice
    (or the job's summary once the job is done, for a campaign: `notify.on = summary`, or
    numbers from a list or a group, or `notify.summary_from` numbers or more) and the
    account's webhook events go to the outbox."""

    def hook(s: Session, account: Account, event: str, job: Job,
             delivery: Delivery | None) -> None:
        if account.webhook_url:
            outbox_rows.add(
                s, kind=WEBHOOK, job_id=job.id, mail_from="", rcpt_to=account.webhook_url,
                message_id=f"<webhook-{uuid.uuid4().hex}@{settings.gateway.domain}>",
                body=webhook_event(event, job, delivery))

    def summary(s: Session, job: Job, account: Account, to: str) -> None:
        # Counts, the first lines and the report read in batches: a campaign has 100,000.
        counts = report_rows.state_counts(s, job.id)
        shown = [line for batch in report_rows.delivery_batches(s, job.id, limit=SUMMARY_LINES)
                 for line in batch]
        chunks = job_csv_chunks(s, job.id) or iter(())
        mail = summary_mail(renderer, job, shown, account,
                            report_attachment(job.id, sum(counts.values()), chunks),
                            to=to, counts=counts)
        enqueue(s, mail, return_path=settings.notify.return_path, job_id=job.id)

    def account_of(s: Session, job: Job) -> Account:
        # The session's identity map holds objects weakly: without a strong reference the
        # account would be read again for every notice of a batch.
        accounts: dict[int, Account] = s.info.setdefault("mailgw.notify.accounts", {})
        account = accounts.get(job.account_id)
        if account is None:
            account = rows.account(s, job.account_id)
            assert account is not None
            accounts[job.account_id] = account
        return account

    def total_of(s: Session, job: Job) -> int:
        if job.recipient_count is not None:
            return job.recipient_count
        # A job from before revision 0008: counted once per session (all its deliveries
        # were written at intake).
        totals: dict[int, int] = s.info.setdefault("mailgw.notify.totals", {})
        if job.id not in totals:
            totals[job.id] = rows.count_deliveries(s, job.id)
        return totals[job.id]

    def on_final(s: Session, job: Job, delivery: Delivery) -> None:
        account = account_of(s, job)
        to = account.notice_address or job.sender
        # the account's own setting (the web space's Settings), else the gateway's
        chosen = effective(account, settings.notify.on, settings.notify.summary_from)
        on = chosen.mode
        hook(s, account, "delivery.final", job, delivery)
        job_done = job.outcome != "in_progress"
        if job_done:
            hook(s, account, "job.final", job, None)
        rule = chosen.summary_from  # 0: no campaign rule, notices for every job
        campaign = rule > 0 and (job.numbers_from_list or total_of(s, job) >= rule)
        if on == "summary" or campaign:
            # One mail per job (a campaign of thousands of numbers must not send thousands
            # of notices); the job row is locked, so this runs once per job outcome.
            if job_done:
                summary(s, job, account, to)
            elif settings.notify.progress_at_half and not outbox_rows.summary_queued(s, job.id):
                final = rows.count_deliveries(s, job.id, final=True)
                if final * 2 >= total_of(s, job):
                    summary(s, job, account, to)
            return
        if on == "failures" and delivery.state == "delivered":
            return
        if any(isinstance(o, Attempt) for o in s.new):
            s.flush()  # an attempt added in this transaction must be read back
        with s.no_autoflush:
            # No flush per notice: the outbox rows of a batch go in at commit, in one
            # multi-row INSERT, instead of one INSERT each before every SELECT.
            attempts = rows.attempts(s, delivery.id)
        mail = notice_mail(renderer, job, delivery, attempts, account,
                           base_url=settings.notify.base_url, to=to)
        enqueue(s, mail, return_path=settings.notify.return_path, job_id=job.id,
                delivery_id=delivery.id)

    return on_final
