"""A delivery's own fax, made just before its call: the job's PDF with the cover page and the
header line it asked for (mailgw.documents.cover, in the sandbox worker).

The cover is personal (the recipient's number and list columns), and the header carries
the time of the call, so both are made for each call, never stored. Which header a fax
gets depends on the driver: a driver whose fax service prints its own header line
(`own_header_line = True`: HylaFAX's tagline, Sinch's header) gets the PDF without ours,
so no page carries two (docs/fax-pages.md).

A cover or header that cannot be made fails the delivery with the reason (error code
`cover`): the fax the sender asked for cannot be sent, and sending it without its cover
would also break its page count. The sandbox being unavailable (ours) is retried.
"""

from __future__ import annotations

import json

import structlog

from mailgw.dispatch.drivers.base import PROVIDER_ERROR, CallResult, Driver
from mailgw.documents import cover_options
from mailgw.documents.cover import CoverError, Covers, Facts, compose, header_text
from mailgw.documents.sandbox import Limits, SandboxUnavailable
from mailgw.ops.config import Settings
from mailgw.store import Store
from mailgw.store.dispatch import cover_facts

log = structlog.get_logger("mailgw.dispatch")
ERROR_CODE = "cover"


def wanted(options: dict[str, str] | None, driver: Driver) -> tuple[bool, bool]:
    """(cover, header) mailgw must put on this fax: the header only for drivers that print
    none of their own."""
    cover, header = cover_options.wanted(options)
    return cover, header and not driver.own_header_line


def load_facts(store: Store, delivery_id: int) -> Facts:
    """What the cover and the header show, for one delivery (one query, in store/)."""
    with store.read() as s:
        row = cover_facts(s, delivery_id)
    try:
        columns = json.loads(row.columns or "{}")
    except ValueError:
        columns = {}
    if not isinstance(columns, dict):
        columns = {}
    return Facts(number=row.number, pages=row.pages_total or row.pages or 0,
                 sender=row.sender, account=row.email, lang=row.lang, tz=row.tz,
                 ref=row.ref, comment=row.comment,
                 columns={str(k): "" if v is None else str(v) for k, v in columns.items()})


class FaxMaker:
    """Makes each delivery's fax; one per dispatcher (the templates are compiled once)."""

    def __init__(self, store: Store, settings: Settings, driver: Driver):
        self.store = store
        self.driver = driver
        self.limits = Limits.of(settings.limits)
        self.covers = Covers(settings.notify.templates_dir or None)

    def wanted(self, options: dict[str, str]) -> tuple[bool, bool]:
        return wanted(options, self.driver)

    def make(self, delivery_id: int, document: bytes | None, options: dict[str, str]
             ) -> tuple[bytes | None, CallResult | None]:
        """In a thread: (the fax to send, None), or (None, the failed result to record)."""
        cover, header = wanted(options, self.driver)
        if document is None or not (cover or header):
            return document, None
        try:
            facts = load_facts(self.store, delivery_id)
            html = self.covers.html(facts) if cover else None
            line = header_text(facts) if header else None
            fax, pages = compose(document, html, line, facts.lang, self.limits)
        except CoverError as exc:
            log.error("cover_failed", delivery_id=delivery_id, error=str(exc))
            return None, CallResult(PROVIDER_ERROR, retryable=False, error_code=ERROR_CODE,
                                    error_text=str(exc))
        except SandboxUnavailable as exc:
            log.warning("cover_postponed", delivery_id=delivery_id, error=str(exc))
            return None, CallResult(PROVIDER_ERROR, retryable=True, error_code=ERROR_CODE,
                                    error_text=f"the sandbox is not available ({exc})")
        if facts.pages and pages != facts.pages:
            log.warning("cover_pages_differ", delivery_id=delivery_id, pages=pages,
                        expected=facts.pages)
        return fax, None
