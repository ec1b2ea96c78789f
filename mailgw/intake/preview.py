"""A preview's pages, for its ack (mailgw.intake.trial says when a mail is one).

The fax is made exactly as the dispatcher would make it for the first recipient
(mailgw.dispatch.faxdoc): the cover page with that recipient's number and list columns,
the header line, then its first page drawn as a PNG, all in the sandbox worker (tasks
"compose" and "firstpage"). Nothing is stored: the ack carries both. A cover that cannot
be made, or a page that cannot be drawn, still gets its ack, saying so; the sandbox being
unavailable (ours) raises, as every other check at intake does.
"""

from __future__ import annotations

import base64
import json

import structlog

from mailgw.documents import cover_options
from mailgw.documents.cover import CoverError, Covers, Facts, compose, header_text
from mailgw.documents.sandbox import Limits, SandboxFailure, run
from mailgw.intake.model import Decision
from mailgw.store import Account

log = structlog.get_logger("mailgw.intake.preview")
WIDTH = 800  # pixels: what a mail client shows whole


class PreviewError(Exception):
    """The preview's pages could not be drawn; the message says why."""


def facts_of(d: Decision, account: Account) -> Facts:
    """What the first recipient's cover and header would show."""
    first = d.recipients[0] if d.recipients else None
    cmd = d.command
    return Facts(number=first.number if first else "", pages=d.pages or 0,
                 sender=d.sender or account.email, account=account.email, lang=account.lang,
                 tz=account.tz, ref=cmd.ref if cmd else None,
                 comment=cmd.comment if cmd else None,
                 columns=dict(first.columns) if first else {})


def first_page(fax: bytes, limits: Limits, width: int = WIDTH) -> tuple[bytes, int]:
    """(the PNG of the fax's first page, the fax's pages); PreviewError when it cannot."""
    try:
        answer = run("firstpage", json.dumps({"width": width}).encode() + b"\n" + fax, limits)
    except SandboxFailure as exc:
        raise PreviewError(str(exc)) from None
    if "png" not in answer:
        raise PreviewError(str(answer.get("error") or "no picture"))
    return base64.b64decode(str(answer["png"])), int(str(answer.get("pages") or 0))


class Previews:
    """One per intake: the cover templates are compiled once."""

    def __init__(self, limits: Limits, templates_dir: str | None = None):
        self.limits = limits
        self.covers = Covers(templates_dir)

    def render(self, d: Decision, account: Account) -> str | None:
        """Fill `d.preview_pdf` and `d.preview_png`; None, or why they could not be made."""
        if d.document is None:
            return "no document"
        cover, header = cover_options.wanted(d.options)
        fax = d.document
        try:
            if cover or header:
                facts = facts_of(d, account)
                fax, _ = compose(d.document, self.covers.html(facts) if cover else None,
                                 header_text(facts) if header else None, facts.lang,
                                 self.limits)
            png, pages = first_page(fax, self.limits)
        except (CoverError, PreviewError) as exc:
            log.warning("preview_failed", error=str(exc))
            return str(exc)
        d.preview_pdf, d.preview_png = fax, png
        if d.pages and pages != d.pages:
            log.warning("preview_pages_differ", pages=pages, expected=d.pages)
        return None
