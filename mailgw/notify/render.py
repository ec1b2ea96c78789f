"""Render acks and notices: Jinja2 templates → a complete RFC 5322 message (bytes).

Pure: no store, no network. User text only reaches headers through `header_text`, which
removes line breaks and control characters and caps the length; the HTML part autoescapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")
LOOP_HEADER = "X-Mailgw-Loop"

WORDS: dict[str, dict[str, str]] = {
    "fr": {"fax": "Fax", "voice": "Message vocal", "delivered": "Remis",
           "partial": "Partiellement remis", "failed": "Non remis", "cancelled": "Annulé",
           "expired": "Expiré", "busy": "occupé", "no_answer": "pas de réponse",
           "line_dropped": "ligne coupée", "not_fax": "ce n'est pas un fax (une voix a répondu)",
           "not_in_service": "numéro non attribué", "provider_error":
           "erreur temporaire du fournisseur", "timeout": "délai dépassé",
           "ok": "remis", "pages": "pages {a}–{b}", "retried": "Nouvelles tentatives : {n}.",
           "gave_up": "Abandon le {t}.", "seconds": "{s} s",
           "dropped_at": "ligne coupée pendant la page {page}", "expired_at":
           "Délai d'envoi dépassé le {t}.", "no_subject": "sans objet",
           "summary": "Bilan", "in_progress": "N/A", "delivered_all": "Succès",
           "delivered_none": "Échec", "partial_job": "Succès partiel",
           "voice_played": "décroché, message écouté en entier ({heard} s)",
           "voice_played_star": "décroché, touche * pressée, message écouté en entier ({heard} s)",
           "voice_heard_part": "décroché, raccroché après {heard} s sur {length} s",
           "voice_transferred": "décroché, touche 9 pressée après {heard} s : transféré au "
                                "{number}",
           "voice_machine_left": "répondeur : message déposé après le bip ({heard} s)",
           "voice_machine_not_left": "répondeur : raccroché sans déposer le message",
           "voice_machine_no_star": "répondeur : la touche * n'a pas été pressée au message "
                                    "d'accueil, message non déposé",
           "voice_no_star": "décroché, mais la touche * n'a pas été pressée au message "
                            "d'accueil : message non diffusé",
           "voice_dropped": "déposé sur la messagerie vocale sans sonnerie ({heard} s)",
           "voice_no_voicemail": "pas de messagerie vocale sur cette ligne : message non déposé",
           "outcome": "Résultat"},
    "en": {"fax": "Fax", "voice": "Voice message", "delivered": "Delivered",
           "partial": "Partially delivered", "failed": "Not delivered",
           "cancelled": "Cancelled", "expired": "Expired", "busy": "busy",
           "no_answer": "no answer", "line_dropped": "line dropped",
           "not_fax": "not a fax machine (a voice answered)",
           "not_in_service": "number not in service",
           "provider_error": "provider error (temporary)", "timeout": "timed out",
           "ok": "delivered", "pages": "pages {a}–{b}", "retried": "Retried {n} times.",
           "gave_up": "Gave up at {t}.", "seconds": "{s} s",
           "dropped_at": "line dropped during page {page}", "expired_at":
           "Sending time ran out at {t}.", "no_subject": "no subject",
           "summary": "Summary", "in_progress": "N/A", "delivered_all": "Success",
           "delivered_none": "Error", "partial_job": "Partial success",
           "voice_played": "answered, message played in full ({heard} s)",
           "voice_played_star": "answered, * pressed, message played in full ({heard} s)",
           "voice_heard_part": "answered, hung up after {heard} s of {length} s",
           "voice_transferred": "answered, 9 pressed after {heard} s: transferred to {number}",
           "voice_machine_left": "answering machine: message left after the beep ({heard} s)",
           "voice_machine_not_left": "answering machine: hung up without leaving the message",
           "voice_machine_no_star": "answering machine: * never pressed at the welcome "
                                    "prompt, message not left",
           "voice_no_star": "answered, but * was not pressed at the welcome prompt: message "
                            "not played",
           "voice_dropped": "dropped in the voicemail without ringing ({heard} s)",
           "voice_no_voicemail": "no voicemail box on this line: message not dropped",
           "outcome": "Outcome"},
    "ru": {"fax": "Факс", "voice": "Голосовое сообщение", "delivered": "Доставлено",
           "partial": "Доставлено частично", "failed": "Не доставлено",
           "cancelled": "Отменено", "expired": "Истёк срок", "busy": "занято",
           "no_answer": "нет ответа", "line_dropped": "обрыв связи",
           "not_fax": "это не факс (ответил голос)", "not_in_service": "номер не обслуживается",
           "provider_error": "временная ошибка оператора", "timeout": "превышено время",
           "ok": "доставлено", "pages": "стр. {a}–{b}", "retried": "Повторных попыток: {n}.",
           "gave_up": "Попытки прекращены {t}.", "seconds": "{s} с",
           "dropped_at": "обрыв связи на странице {page}", "expired_at":
           "Время на отправку истекло {t}.", "no_subject": "без темы",
           "summary": "Итог", "in_progress": "N/A", "delivered_all": "Успешно",
           "delivered_none": "Ошибка", "partial_job": "Частично успешно",
           "voice_played": "ответили, сообщение прослушано полностью ({heard} с)",
           "voice_played_star": "ответили, нажата *, сообщение прослушано полностью ({heard} с)",
           "voice_heard_part": "ответили, положили трубку через {heard} с из {length} с",
           "voice_transferred": "ответили, нажата 9 через {heard} с: переведено на {number}",
           "voice_machine_left": "автоответчик: сообщение оставлено после сигнала ({heard} с)",
           "voice_machine_not_left": "автоответчик: звонок завершён, сообщение не оставлено",
           "voice_machine_no_star": "автоответчик: * не нажата после приветствия, сообщение "
                                    "не оставлено",
           "voice_no_star": "ответили, но * не нажата после приветствия: сообщение не "
                            "воспроизведено",
           "voice_dropped": "оставлено в голосовой почте без звонка ({heard} с)",
           "voice_no_voicemail": "на линии нет голосовой почты: сообщение не оставлено",
           "outcome": "Результат"},
}
DATE_FORMATS = {"fr": "%d/%m/%Y %H:%M:%S", "en": "%Y-%m-%d %H:%M:%S", "ru": "%d.%m.%Y %H:%M:%S"}


def words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["en"])


def local_time(value: datetime | None, tz: str, lang: str) -> str:
    """A time in the account's zone, written the way its language writes dates."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz))
    return f"{local.strftime(DATE_FORMATS.get(lang, DATE_FORMATS['en']))} {local.tzname()}"


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
    def __init__(self, *, from_address: str, domain: str, override_dir: str | None = None):
        self.from_address = from_address
        self.domain = domain
        paths = [override_dir] if override_dir else []
        self.env = Environment(
            loader=FileSystemLoader([*paths, str(TEMPLATES)]),
            autoescape=select_autoescape(["html"], default_for_string=False),
            undefined=StrictUndefined, trim_blocks=False, keep_trailing_newline=True)

    def _template(self, lang: str, name: str) -> Any:
        lang = lang if (TEMPLATES / lang).is_dir() else "en"
        return self.env.get_template(f"{lang}/{name}")

    def render(self, kind: str, template: str, lang: str, to: str, ctx: dict[str, Any],
               headers: dict[str, str], in_reply_to: str | None = None,
               attachments: list[tuple[str, bytes, str, str]] | None = None) -> Rendered:
        text_t = self._template(lang, f"{template}.txt")
        html_t = self._template(lang, f"{template}.html")
        context = text_t.new_context(ctx)
        subject = "".join(text_t.blocks["subject"](context))
        body = "".join(text_t.blocks["body"](text_t.new_context(ctx)))
        html = html_t.render(ctx)
        msg = EmailMessage(policy=SMTP)
        message_id = make_msgid(idstring=kind, domain=self.domain)
        msg["From"] = self.from_address
        msg["To"] = to
        msg["Subject"] = header_text(subject, 250)
        msg["Date"] = format_datetime(datetime.now().astimezone())
        msg["Message-ID"] = message_id
        original = safe_msgid(in_reply_to)
        if original:
            msg["In-Reply-To"] = original
            msg["References"] = original
        msg["Auto-Submitted"] = "auto-replied"
        msg[LOOP_HEADER] = self.domain
        msg["X-Mailgw-Kind"] = kind
        for name, value in headers.items():
            msg[name] = header_text(value, 400)
        msg.set_content(body)
        msg.add_alternative(html, subtype="html")
        for filename, data, maintype, subtype in attachments or []:
            params = {"charset": "utf-8"} if maintype == "text" else {}
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename,
                               params=params)
        return Rendered(kind, to, message_id, msg.as_bytes())


def renderer_for(settings: Any) -> Renderer:
    """The renderer every role uses: the operator's templates first, then ours."""
    return Renderer(from_address=settings.notify.from_address, domain=settings.gateway.domain,
                    override_dir=settings.notify.templates_dir or None)
