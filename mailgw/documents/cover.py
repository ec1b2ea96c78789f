"""A delivery's own fax: the cover page and the header line (parent side).

The cover is a Jinja2 template, `<lang>/cover.html` (fr, en, ru; others use en), looked up
first in `[notify] templates_dir` (the same folder, the same layout as the notices'
templates), then in mailgw/documents/templates/. It sees the job (ref, comment, sender,
account), the recipient (number, and the recipient's own list columns, both as `columns`
and each as a variable of its own: `{{ Nom }}`, `{{ Prénom }}`), the date and the pages
(the cover included). It is rendered here, autoescaped, in a sandboxed Jinja environment;
the HTML becomes a page in the sandbox worker (task "compose", mailgw.documents.stamp), where
the header line is drawn too.

Personal, so made for each delivery at dispatch time (mailgw.dispatch.faxdoc), never stored.
A template that cannot be used raises CoverError: the dispatcher fails that delivery with
the reason (docs/fax-pages.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, FileSystemLoader, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from mailgw.documents import sandbox
from mailgw.documents.sandbox import Limits

TEMPLATES = Path(__file__).with_name("templates")
LANGS = ("fr", "en", "ru")
PAGE_WORD = {"fr": "Page", "en": "Page", "ru": "Стр."}
DATE_FORMAT = {"fr": "%d/%m/%Y %H:%M", "en": "%Y-%m-%d %H:%M", "ru": "%d.%m.%Y %H:%M"}


class CoverError(Exception):
    """The cover page or the header line could not be made; the message says why."""


@dataclass(frozen=True)
class Facts:
    """What one delivery's cover and header show (no store: mailgw.dispatch.faxdoc reads it)."""

    number: str  # E.164
    pages: int  # the fax's pages, the cover included
    sender: str  # the proven address the job came from
    account: str  # the account's address
    lang: str = "en"
    tz: str = "UTC"
    ref: str | None = None
    comment: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    when: datetime | None = None  # default: now

    def date(self) -> str:
        try:
            zone = ZoneInfo(self.tz)
        except (ValueError, KeyError):
            zone = ZoneInfo("UTC")
        when = (self.when or datetime.now(zone)).astimezone(zone)
        return when.strftime(DATE_FORMAT.get(self.lang, DATE_FORMAT["en"]))


class Covers:
    """The cover templates: the operator's folder first, then ours."""

    def __init__(self, override_dir: str | None = None):
        loaders = [FileSystemLoader(override_dir)] if override_dir else []
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader([*loaders, FileSystemLoader(str(TEMPLATES))]),
            autoescape=select_autoescape(["html"], default_for_string=True))

    def html(self, facts: Facts) -> str:
        """The cover's HTML for one delivery; CoverError when the template cannot be used."""
        lang = facts.lang if facts.lang in LANGS else "en"
        columns = {str(k): "" if v is None else str(v) for k, v in facts.columns.items()}
        ctx: dict[str, object] = {k: v for k, v in columns.items() if k.isidentifier()}
        ctx.update(number=facts.number, pages=facts.pages, sender=facts.sender,
                   account=facts.account, ref=facts.ref or "", comment=facts.comment or "",
                   date=facts.date(), columns=columns, lang=lang)
        try:
            return self.env.get_template(f"{lang}/cover.html").render(ctx)
        except TemplateError as exc:
            raise CoverError(f"the cover template cannot be used: {type(exc).__name__}: "
                             f"{str(exc)[:200]}") from None


def header_text(facts: Facts) -> str:
    """The header line's left part, as fax machines print it: date and time, the sender,
    the number called ("Page x/y" is added on each page)."""
    return f"{facts.date()}   {facts.sender}   → {facts.number}"


def compose(document: bytes, cover_html: str | None, header: str | None, lang: str,
            limits: Limits) -> tuple[bytes, int]:
    """The PDF the driver gets (sandbox task "compose"); CoverError when it cannot be made,
    sandbox.SandboxUnavailable when the sandbox cannot run (ours, temporary)."""
    params = {"cover": cover_html, "header": header,
              "page_word": PAGE_WORD.get(lang, PAGE_WORD["en"])}
    try:
        answer = sandbox.run("compose", json.dumps(params).encode() + b"\n" + document, limits)
    except sandbox.SandboxFailure as exc:
        raise CoverError(f"the cover page or header line could not be made ({exc})") from None
    if "error" in answer or "document" not in answer:
        raise CoverError(f"the cover page or header line could not be made "
                         f"({answer.get('error')})")
    return base64.b64decode(str(answer["document"])), int(str(answer.get("pages") or 0))
