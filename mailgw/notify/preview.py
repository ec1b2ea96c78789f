"""`mailgw notify preview`: a sample ack, notice or summary rendered with the configured
templates, without a store, so operators can check their own templates."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

from mailgw.codes import Code
from mailgw.notify.messages import AckFacts, ack_mail, notice_mail, summary_mail
from mailgw.notify.render import renderer_for
from mailgw.store.models import Account, Attempt, Delivery, Job, utcnow

SAMPLE_TO = "alice@example.com"


def _sample(state: str, channel: str, lang: str) -> tuple[Account, Job, Delivery,
                                                           list[Attempt]]:
    now = utcnow()
    account = Account(id=1, email=SAMPLE_TO, lang=lang, tz="Europe/Paris", region="FR")
    job = Job(id=42, account_id=1, channel=channel, sender=SAMPLE_TO, state="done",
              outcome={"delivered": "delivered_all", "partial": "partial"}.get(
                  state, "delivered_none"), subject="•••:01 70 70 99 01:INV-7:relance",
              ref="INV-7", comment="relance", pages=5 if channel == "fax" else None,
              created_at=now - timedelta(minutes=9), finished_at=now,
              message_id="<sample@example.com>")
    sent = {"delivered": 5, "partial": 3}.get(state, 0) if channel == "fax" else 0
    delivery = Delivery(id=7, job_id=42, number="+33170709901", state=state,
                        pages_sent=sent, pages_total=5 if channel == "fax" else None,
                        csid="+33 1 70 70 99 01" if sent else None, attempts=2,
                        finished_at=now)
    first = Attempt(started_at=now - timedelta(minutes=8), ended_at=now - timedelta(minutes=6),
                    result="line_dropped" if state != "failed" else "busy",
                    pages_sent=3 if state in ("delivered", "partial") else 0, first_page=1,
                    duration=120.0, error_text=None)
    last_result = {"delivered": "delivered", "partial": "line_dropped", "failed": "busy",
                   "expired": "no_answer", "cancelled": "cancelled"}[state]
    second = Attempt(started_at=now - timedelta(minutes=2), ended_at=now,
                     result=last_result, pages_sent=2 if state == "delivered" else 0,
                     first_page=4, duration=70.0, error_text=None)
    return account, job, delivery, [first, second]


def preview(settings: Any, *, kind: str, lang: str, state: str, channel: str = "fax",
            html: bool = False) -> str:
    renderer = renderer_for(settings)
    account, job, delivery, attempts = _sample(state, channel, lang)
    if kind == "ack":
        mail = ack_mail(renderer, AckFacts(
            code=Code.SENDING, to=SAMPLE_TO, lang=lang, tz=account.tz, channel=channel,
            received=utcnow(), original_subject=job.subject,
            original_message_id=job.message_id, job_ids=[42], numbers=[delivery.number],
            pages=job.pages, ref=job.ref, comment=job.comment))
    elif kind == "summary":
        other = Delivery(id=8, job_id=42, number="+33612345678", state="delivered",
                         pages_sent=job.pages or 0, pages_total=job.pages,
                         csid="+33 6 12 34 56 78", attempts=1, finished_at=utcnow())
        mail = summary_mail(renderer, job, [delivery, other], account,
                            "\ufeffREF_LIST;ID_LINE\r\nINV-7;1\r\n")
    else:
        mail = notice_mail(renderer, job, delivery, attempts, account)
    msg = message_from_bytes(mail.data, policy=policy.default)
    head = "".join(f"{name}: {value}\n" for name, value in msg.items()
                   if name in ("Subject", "To") or name.startswith("X-Mailgw"))
    body = msg.get_body(preferencelist=("html",) if html else ("plain",))
    return head + "\n" + (body.get_content() if body is not None else "")  # type: ignore[union-attr]
