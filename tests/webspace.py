"""Helpers for the web space's tests (integration and browser): an invitation's link from
the mail that carries it, a fax mail over real SMTP, the CSRF token of a page."""

from __future__ import annotations

import re
import smtplib
from datetime import datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from mailgw.notify.invite import send_invite
from tests.conftest import PASSWORD, SENDER, RunningApp, Sink, fax_message

LINK = re.compile(r"https?://\S+/invite/[A-Za-z0-9_\-]+")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
WEB_PASSWORD = "correct horse battery"


def invite(app: RunningApp, sink: Sink, email: str = SENDER) -> str:
    """`mailgw account invite`'s work, then the link out of the mail the sink received."""
    with app.store.tx() as s:
        send_invite(s, app.settings, email)

    def found() -> str | None:
        for m in sink.kinds("invite"):
            if m["To"] == email:
                body = m.get_body(("plain",))
                text = body.get_content() if body is not None else ""
                hit = LINK.search(text)
                if hit:
                    return hit.group(0)
        return None
    sink.wait_for(lambda _: found() is not None, what=f"the invitation for {email}")
    link = found()
    assert link is not None
    return link


def csrf_of(html: str) -> str:
    hit = CSRF.search(html)
    assert hit, "the page has no CSRF field"
    return hit.group(1)


def deferred_when(days: int = 3) -> str:
    """A `when` field (HHMMDDMMYYYY, Paris time) some days ahead: the job waits scheduled."""
    at = datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=days)
    return at.strftime("%H%M%d%m%Y")


def send_fax(port: int, subject: str, pdf: bytes, sender: str = SENDER) -> str:
    """One fax mail through the real SMTP listener; its reply."""
    msg: EmailMessage = fax_message(subject, pdf, sender=sender)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.send_message(msg)
        code, text = client.noop()
    return f"{code} {text!r}"


__all__ = ["PASSWORD", "WEB_PASSWORD", "csrf_of", "deferred_when", "invite", "send_fax"]
