"""The answer to one mail: the SMTP reply's detail, and the acknowledgement mail that only a
proven sender gets (mailgw.notify.messages renders it)."""

from __future__ import annotations

from datetime import datetime

from mailgw.intake.model import Decision
from mailgw.notify.messages import AckFacts, ack_mail
from mailgw.notify.render import Rendered, Renderer
from mailgw.store import Account
from mailgw.subject_parser import masked_subject


def reply_detail(d: Decision, job_ids: list[int]) -> str:
    """What the reply line says after the code's sentence: the job numbers, else why."""
    if job_ids:
        return ("job " if len(job_ids) == 1 else "jobs ") + ", ".join(map(str, job_ids))
    return d.detail


def ack(renderer: Renderer, d: Decision, account: Account, job_ids: list[int],
        now: datetime) -> Rendered:
    """The ack mail to the proven sender: the code, what was read and used, the jobs."""
    assert d.sender is not None
    cmd = d.command
    facts = AckFacts(
        code=d.code, to=d.sender, lang=account.lang, tz=account.tz, channel=d.channel,
        received=now, original_subject=masked_subject(d.mail.subject),
        original_message_id=d.mail.message_id, job_ids=job_ids, numbers=d.numbers,
        invalid_numbers=d.invalid, duplicates=d.duplicates, pages=d.pages,
        documents=d.documents_used, ignored=d.ignored,
        send_at=cmd.when_utc if cmd is not None else None,
        ref=cmd.ref if cmd else None, comment=cmd.comment if cmd else None,
        detail=d.detail,
        quality=d.options.get("quality") if d.channel == "fax" and (job_ids or d.preview)
        else None,
        preview=d.preview, preview_png=d.preview_png, preview_pdf=d.preview_pdf)
    return ack_mail(renderer, facts)
