"""Render acks and notices: Jinja2 templates → a complete RFC 5322 message (bytes).

Pure: no store, no network. User text only reaches headers through `header_text`, which
removes line breaks and control characters and caps the length; the HTML part autoescapes.
The words of the notices are in mailgw.notify.words, the MIME writing in mailgw.notify.mime.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailgw.notify.mime import compose, compose_email
from mailgw.vocab import LOOP_HEADER  # the one definition

TEMPLATES = Path(__file__).with_name("templates")

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u0085]+")


def header_text(text: str | None, limit: int = 200) -> str:
    """User text made safe for a header: one line, no control characters, bounded."""
    if not text:
        return ""
    one_line = " ".join(_CONTROL.sub(" ", text).split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


_MSGID = re.compile(r"<[^<>\s\"\\]{1,900}@[^<>\s\"\\]{1,250}>")


def safe_msgid(value: str | None) -> str | None:
    """The original Message-ID for In-Reply-To, only when it is well-formed."""
    if value and _MSGID.fullmatch(value.strip()):
        return value.strip()
    return None


@dataclass(frozen=True)
class Rendered:
    """A finished mail, ready for the outbox."""

    kind: str
    to: str
    message_id: str
    data: bytes = field(repr=False)


class Renderer:
    def __init__(self, *, from_address: str, domain: str, override_dir: str | None = None,
                 base_url: str = ""):
        self.from_address = from_address
        self.domain = domain
        self.base_url = base_url.rstrip("/")  # the web space, for the button to a job
        paths = [override_dir] if override_dir else []
        self.env = Environment(
            loader=FileSystemLoader([*paths, str(TEMPLATES)]),
            autoescape=select_autoescape(["html"], default_for_string=False),
            undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=True)
        # Compiled templates by (language asked, file name), with the time they were looked
        # up: Jinja checks a template file for changes (a stat) on every lookup, so look up
        # at most every TEMPLATE_CHECK seconds; an edited template is still picked up.
        self._templates: dict[tuple[str, str], tuple[Any, float]] = {}

    TEMPLATE_CHECK = 2.0

    def job_link(self, job_id: int) -> str:
        """The job's page in the web space, or "" when `[notify] base_url` is not set."""
        return f"{self.base_url}/jobs/{job_id}" if self.base_url else ""

    def _template(self, lang: str, name: str) -> Any:
        key = (lang, name)
        now = time.monotonic()
        cached = self._templates.get(key)
        if cached is not None and now - cached[1] < self.TEMPLATE_CHECK:
            return cached[0]
        folder = lang if (TEMPLATES / lang).is_dir() else "en"
        template = self.env.get_template(f"{folder}/{name}")
        self._templates[key] = (template, now)
        return template

    def render(self, kind: str, template: str, lang: str, to: str, ctx: dict[str, Any],
               headers: dict[str, str], in_reply_to: str | None = None,
               attachments: list[tuple[str, bytes, str, str]] | None = None, *,
               inline: list[tuple[str, bytes, str, str, str]] | None = None) -> Rendered:
        """A mail from `template` in `lang`: the text and HTML parts, then `attachments`
        (file name, data, type, subtype); `inline` parts (Content-ID, data, type, subtype,
        file name) go with the HTML part (multipart/related), which shows them by `cid:`."""
        text_t = self._template(lang, f"{template}.txt")
        html_t = self._template(lang, f"{template}.html")
        subject = "".join(text_t.blocks["subject"](text_t.new_context(ctx)))
        body = "".join(text_t.blocks["body"](text_t.new_context(ctx)))
        html = html_t.render(ctx)
        message_id = make_msgid(idstring=kind, domain=self.domain)
        fields = [("From", self.from_address), ("To", to),
                  ("Subject", header_text(subject, 250)),
                  ("Date", format_datetime(datetime.now().astimezone())),
                  ("Message-ID", message_id)]
        original = safe_msgid(in_reply_to)
        if original:
            fields += [("In-Reply-To", original), ("References", original)]
        fields += [("Auto-Submitted", "auto-replied"), (LOOP_HEADER, self.domain),
                   ("X-Mailgw-Kind", kind)]
        fields += [(name, header_text(value, 400)) for name, value in headers.items()]
        data = (compose_email(fields, body, html, attachments or (), inline or ())
                if attachments or inline else compose(fields, body, html))
        return Rendered(kind, to, message_id, data)


def renderer_for(settings: Any) -> Renderer:
    """The renderer every role uses: the operator's templates first, then ours."""
    return Renderer(from_address=settings.notify.from_address, domain=settings.gateway.domain,
                    override_dir=settings.notify.templates_dir or None,
                    base_url=settings.notify.base_url)
