"""Received faxes → mails: the ReceivedFaxes port (mailgw.dispatch.drivers.ports) on the store.

A fax becomes one outbox row to the account that owns the called number (or to
`[notify] received_unmapped_to`), written in the same transaction as its `received_fax`
row: a smarthost that is down loses nothing (the outbox retries), and a fax seen again
after a restart, or by a second host, is never mailed twice (unique by source and name).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog
from sqlalchemy.exc import IntegrityError

from mailgw.accounts.inbound_numbers import NumberError, e164
from mailgw.dispatch.drivers.base import Driver
from mailgw.dispatch.drivers.ports import ReceivedFax
from mailgw.documents import sandbox
from mailgw.notify.messages import international, quality_words
from mailgw.notify.outbox import enqueue
from mailgw.notify.render import Rendered, Renderer, renderer_for
from mailgw.notify.words import badge, local_time, words
from mailgw.ops.config import Settings
from mailgw.store import received as rows
from mailgw.store.db import Store

log = structlog.get_logger("mailgw.received")
KIND = "received"


def quality_of(resolution: int) -> str:
    """The fax quality a vertical resolution is (98 normal, 196 high, 391 best)."""
    return "normal" if resolution < 150 else "high" if resolution < 300 else "best"


def duration_words(seconds: float, lang: str) -> str:
    seconds = round(seconds)
    if seconds <= 0:
        return ""
    minutes, secs = divmod(seconds, 60)
    w = words(lang)
    return w["minutes"].format(m=minutes, s=secs) if minutes else w["seconds"].format(s=secs)


Attachment = tuple[str, bytes, str, str]  # file name, data, main type, subtype


def received_mail(renderer: Renderer, fax: ReceivedFax, *, to: str, lang: str, tz: str,
                  unmapped: bool, attachment: Attachment | None) -> Rendered:
    """The mail for one received fax, in the reader's language, the fax attached (when
    the provider gave its document)."""
    w = words(lang)
    quality = quality_of(fax.resolution) if fax.resolution > 0 else None
    ctx = {
        "called": international(fax.called) if fax.called else "",
        "caller": international(fax.caller) if fax.caller.startswith("+") else fax.caller,
        "csid": fax.csid, "pages": fax.pages, "duration": duration_words(fax.duration, lang),
        "received": local_time(fax.received_at, tz, lang), "partial": fax.partial,
        "error": fax.error, "unmapped": unmapped,
        "filename": attachment[0] if attachment else "", **quality_words(quality, w),
        **(badge("warn", w["fax_incomplete"]) if fax.partial else badge("ok", w["fax_received"])),
    }
    headers = {"X-Mailgw-Received-Pages": str(fax.pages),
               "X-Mailgw-Received-Partial": "yes" if fax.partial else "no"}
    return renderer.render(KIND, KIND, lang, to, ctx, headers, None,
                           [attachment] if attachment else [])


class ReceivedMailer:
    """ReceivedFaxes: the PDF made in the sandbox (img2pdf, lossless), then the mail and
    the fax's row in one transaction. Blocking: drivers call it in a thread."""

    def __init__(self, store: Callable[[], Store], settings: Settings):
        self._store = store
        self.settings = settings
        self.renderer = renderer_for(settings)
        self.limits = sandbox.Limits.of(settings.limits)

    def unmapped_to(self) -> str:
        to = self.settings.notify.received_unmapped_to.strip()
        return f"postmaster@{self.settings.gateway.domain}" if to == "postmaster" else to

    def taken(self, source: str, names: Sequence[str]) -> set[str]:
        with self._store().read() as s:
            return rows.taken(s, source, names)

    def attachment(self, fax: ReceivedFax) -> tuple[Attachment | None, int, int]:
        """The fax as a PDF, its vertical dpi and its pages as read from the document itself
        (0 = not read): a TIFF made into a PDF losslessly, a PDF as it came (its pages
        counted in the sandbox). A document that cannot be read is attached as it came
        (never lose a fax); None when the provider gave no document."""
        stem = "fax-" + fax.received_at.strftime("%Y%m%d-%H%M%S")
        if fax.pdf:
            try:
                pages = sandbox.run("pdf", fax.pdf, self.limits).get("pages")
            except sandbox.SandboxFailure:
                pages = None
            counted = pages if isinstance(pages, int) and pages > 0 else 0
            return (f"{stem}.pdf", fax.pdf, "application", "pdf"), 0, counted
        if not fax.tiff:
            return None, 0, 0
        try:
            answer = sandbox.run("received", fax.tiff, self.limits)
        except sandbox.SandboxFailure as exc:
            answer = {"error": str(exc)}
        pdf, dpi = answer.get("pdf"), answer.get("dpi")
        if isinstance(pdf, str):
            resolution = int(dpi[1]) if isinstance(dpi, list) and len(dpi) == 2 else 0
            return (f"{stem}.pdf", base64.b64decode(pdf), "application", "pdf"), resolution, 0
        log.warning("received_fax_not_converted", name=fax.name, error=answer.get("error"))
        return (f"{stem}.tif", fax.tiff, "image", "tiff"), 0, 0

    def called_number(self, fax: ReceivedFax) -> str:
        try:
            return e164(fax.called, self.settings.accounts.default_region) if fax.called else ""
        except NumberError:
            return fax.called

    def deliver(self, fax: ReceivedFax) -> bool:
        if self.taken(fax.source, [fax.name]):
            return False
        called = self.called_number(fax)
        attachment, resolution, pages = self.attachment(fax)
        if resolution > 0:  # the TIFF's own word beats a listing's
            fax = replace(fax, resolution=resolution)
        if pages > 0:  # the PDF's own pages beat the provider's count
            fax = replace(fax, pages=pages)
        try:
            with self._store().tx() as s:
                owner = rows.owner_of(s, called) if called else None
                if owner is not None:
                    to, lang, tz = owner.notice_address or owner.email, owner.lang, owner.tz
                else:
                    to = self.unmapped_to()
                    lang, tz = self.settings.notify.default_lang, self.settings.accounts.default_tz
                rows.mark_taken(s, source=fax.source, name=fax.name, called=called,
                                caller=fax.caller, csid=fax.csid, pages=fax.pages,
                                account_id=owner.id if owner else None, rcpt_to=to,
                                received_at=fax.received_at)
                if to:
                    mail = received_mail(self.renderer, fax, to=to, lang=lang, tz=tz,
                                         unmapped=owner is None, attachment=attachment)
                    enqueue(s, mail, return_path=self.settings.notify.return_path)
        except IntegrityError:  # another host took it meanwhile
            return False
        log.info("received_fax", source=fax.source, name=fax.name, called=called,
                 caller=fax.caller, csid=fax.csid, pages=fax.pages, partial=fax.partial,
                 to=to or None, account=owner.email if owner else None)
        if not to:
            log.warning("received_fax_unmapped_kept", name=fax.name, called=called,
                        hint="set [notify] received_unmapped_to, or map the number")
        return True


async def run_receiving(driver: Driver, stop: asyncio.Event) -> None:
    """Ask the driver for received faxes every `receive_interval` seconds until stopped."""
    while not stop.is_set():
        try:
            await driver.poll_received()
        except Exception as exc:  # noqa: BLE001 - a bad poll must not end the loop
            log.warning("received_poll_failed", driver=driver.name, error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=driver.receive_interval)
        except TimeoutError:
            pass
