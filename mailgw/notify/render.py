"""Render acks and notices: Jinja2 templates → a complete RFC 5322 message (bytes).

Pure: no store, no network. User text only reaches headers through `header_text`, which
removes line breaks and control characters and caps the length; the HTML part autoescapes.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import quoprimime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from itertools import accumulate
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
           "quality_normal": "normale", "quality_high": "haute", "quality_best": "maximale",
           "ok": "remis", "pages": "pages {a}–{b}", "retried": "Nouvelles tentatives : {n}.",
           "retried_once": "Nouvelles tentatives : 1.", "minutes": "{m} min {s:02d} s",
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
           "quality_normal": "normal", "quality_high": "high", "quality_best": "best",
           "ok": "delivered", "pages": "pages {a}–{b}", "retried": "Retried {n} times.",
           "retried_once": "Retried once.", "minutes": "{m} min {s:02d} s",
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
           "quality_normal": "обычное", "quality_high": "высокое", "quality_best": "наилучшее",
           "ok": "доставлено", "pages": "стр. {a}–{b}", "retried": "Повторных попыток: {n}.",
           "retried_once": "Повторных попыток: 1.", "minutes": "{m} мин {s:02d} с",
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


# -- MIME ----------------------------------------------------------------------------------
# A notice or an ack is a multipart/alternative (text, HTML) mail. `compose` writes it
# directly, byte for byte as `compose_email` (the stdlib's EmailMessage with policy=SMTP)
# does, at a fraction of the cost: the stdlib parses every header into a parse tree and
# folds it again, which was most of the price of a notice. Plain ASCII headers are written
# as they are, unstructured text with non-ASCII words (Subject) is folded by `_fold_words`
# (the stdlib's algorithm for that case), and the rest (addresses, dates, anything unusual)
# still goes through the stdlib's own folding, cached. Tests compare `fold` with the stdlib
# and `compose` with `compose_email` byte for byte (tests/test_notify.py).

_MAX_LINE: int = SMTP.max_line_length or 78  # 78 for policy.SMTP
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces
_PLAIN_MSGID = re.compile(r"<[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+>")
_STRUCTURED = frozenset({"bcc", "cc", "content-disposition", "content-transfer-encoding",
                         "content-type", "date", "from", "mime-version", "orig-date",
                         "reply-to", "resent-bcc", "resent-cc", "resent-date", "resent-from",
                         "resent-sender", "resent-to", "sender", "to", "message-id"})
_FOLDED: dict[tuple[str, str], str] = {}  # the stdlib's folding of repeated headers
_NEWLINES = re.compile(r"\r\n|\r|\n")


def _stdlib_fold(name: str, value: str) -> str:
    """What EmailMessage(policy=SMTP) writes for `msg[name] = value` (same errors too)."""
    return str(SMTP.header_store_parse(name, value)[1].fold(policy=SMTP))


_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_WORDS = re.compile(r"[^\x00-\x20\x7f\x85\u2028\u2029]+(?: [^\x00-\x20\x7f\x85\u2028\u2029]+)*")


_Q_MAP = ["_" if c == 32 else chr(c) if c in _Q_SAFE else f"={c:02X}" for c in range(256)]
_Q_UNSAFE = bytes(c for c in range(256) if c != 32 and c not in _Q_SAFE)
_Q_KEEP = bytes(c for c in range(256) if c not in _Q_UNSAFE)


def _encoded_word(text: str) -> str:
    """An RFC 2047 word in UTF-8, Q or B, whichever the stdlib would pick."""
    raw = text.encode("utf-8")
    q_len = len(raw) + 2 * len(raw.translate(None, _Q_KEEP))  # unsafe bytes take 3
    groups, left = divmod(len(raw), 3)
    if q_len - (groups * 4 + (4 if left else 0)) < 5:
        return "=?utf-8?q?" + "".join([_Q_MAP[c] for c in raw]) + "?="
    return f"=?utf-8?b?{base64.b64encode(raw).decode('ascii')}?="


_CHAR_COST: dict[str, tuple[int, int]] = {}  # char -> (length in Q, UTF-8 bytes)


def _char_cost(ch: str) -> tuple[int, int]:
    raw = ch.encode("utf-8")
    cost = _CHAR_COST[ch] = (len(raw) + 2 * len(raw.translate(None, _Q_KEEP)), len(raw))
    return cost


def _chunk_length(text: str, room: int) -> int:
    """The longest prefix of `text` (at most `room` - 12 characters) whose encoded word fits
    in `room`: the stdlib's answer (it tries shorter and shorter prefixes), computed from
    running lengths instead of encoding each prefix."""
    n = min(room - 12, len(text))
    costs = [_CHAR_COST.get(ch) or _char_cost(ch) for ch in text[:n]]
    q_len = [0, *accumulate(c[0] for c in costs)]
    b_len = [0, *accumulate(c[1] for c in costs)]
    while n > 0:
        groups, left = divmod(b_len[n], 3)
        b = groups * 4 + (4 if left else 0)
        if (q_len[n] if q_len[n] - b < 5 else b) + 12 <= room:
            break
        n -= 1
    return n


class _Unusual(Exception):
    """A case `_fold_words` leaves to the stdlib."""


def _steal_space(lines: list[str]) -> str:
    if lines[-1] and lines[-1][-1] == " ":
        lines[-1] = lines[-1][:-1]
        return " "
    return ""


def _fold_words(name: str, value: str) -> str:
    """The stdlib's folding (`_refold_parse_tree` for an unstructured header with policy=SMTP)
    of words separated by single spaces, as `header_text` returns them: ASCII words kept, a
    run of non-ASCII words as UTF-8 encoded words. Raises `_Unusual` for the corner cases it
    does not follow (the caller then asks the stdlib)."""
    maxlen = _MAX_LINE
    lines = [f"{name}: "]
    if value.isascii():  # the whole value on the first line, or alone on the second
        if len(value) <= maxlen - len(lines[0]):
            return f"{name}: {value}\r\n"
        if len(value) + 1 <= maxlen:
            return f"{name}:\r\n {value}\r\n"
    tokens: list[str] = []
    for word in value.split(" "):
        tokens += [" ", word] if tokens else [word]
    last_ew: int | None = None  # where the last encoded word starts on the last line
    ew: tuple[int, int, int, str] | None = None  # (line, start, end, decoded) of that word
    encode_next = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if encode_next or not token.isascii():
            encode_next = False
            to_encode = token
            if last_ew is not None:  # joined with the previous encoded word
                if ew is None or ew[0] != len(lines) - 1 or ew[1] != last_ew:
                    raise _Unusual
                to_encode = ew[3] + lines[-1][ew[2]:] + to_encode
                lines[-1] = lines[-1][:last_ew]
            if to_encode[0] == " " or to_encode[-1] == " ":
                raise _Unusual
            new_last_ew = len(lines[-1]) if last_ew is None else last_ew
            while to_encode:
                remaining = maxlen - len(lines[-1])
                if remaining - 12 <= 0:  # 12: the chrome of "=?utf-8?q??="
                    lines.append(" ")  # (the stdlib keeps new_last_ew: joining then fails)
                    continue
                chunk = to_encode[:_chunk_length(to_encode, remaining)]
                if not chunk:
                    raise _Unusual
                encoded = _encoded_word(chunk)
                if len(encoded) > remaining:
                    raise _Unusual
                lines[-1] += encoded
                ew = (len(lines) - 1, len(lines[-1]) - len(encoded), len(lines[-1]), chunk)
                to_encode = to_encode[len(chunk):]
                if to_encode:
                    lines.append(" ")
                    new_last_ew = len(lines[-1])
            last_ew = new_last_ew
            i += 1
            continue
        if len(token) <= maxlen - len(lines[-1]):
            lines[-1] += token
            i += 1
            continue
        if len(token) + 1 <= maxlen:
            newline = _steal_space(lines)
            if newline or token == " ":
                lines.append(newline + token)
                last_ew = None
                i += 1
                continue
        encode_next = True  # an ASCII word too long for any line: encoded, so it can wrap
    return "\r\n".join(lines) + "\r\n"


def fold(name: str, value: str) -> str:
    """One header field, CRLF-terminated, as the stdlib's generator writes it."""
    lower = name.lower()
    if "=?" not in value and lower not in _STRUCTURED:
        if len(name) + len(value) + 2 <= _MAX_LINE and _PLAIN.fullmatch(value):
            return f"{name}: {value}\r\n"
        if len(name) < 40 and _WORDS.fullmatch(value) and value.split() == value.split(" "):
            try:
                value.encode("utf-8")  # no lone surrogates
                return _fold_words(name, value)
            except (_Unusual, UnicodeEncodeError):
                pass
    elif (lower == "message-id" and len(name) + len(value) + 2 <= _MAX_LINE
          and _PLAIN_MSGID.fullmatch(value)):
        return f"{name}: {value}\r\n"
    key = (name, value)  # From, To, Date: the same few values, mail after mail
    folded = _FOLDED.get(key)
    if folded is None:
        if len(_FOLDED) >= 4096:
            _FOLDED.clear()
        folded = _FOLDED[key] = _stdlib_fold(name, value)
    return folded


def encode_text(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body with CRLF line ends) for a UTF-8 text part: the
    stdlib's `contentmanager` heuristics for policy=SMTP (7bit, 8bit, quoted-printable or
    base64), as its generator writes them."""
    lines = text.encode("utf-8").splitlines()
    if max((len(x) for x in lines), default=0) <= _MAX_LINE:
        body = b"\r\n".join(lines) + b"\r\n"
        return ("7bit" if body.isascii() else "8bit"), body
    embedded = b"\r\n".join(lines[:10]) + b"\r\n"
    sniff_qp = quoprimime.body_encode(embedded.decode("latin-1"), _MAX_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(embedded)):
        whole = b"\r\n".join(lines) + b"\r\n"
        step = _MAX_LINE // 4 * 3
        data = "".join(binascii.b2a_base64(whole[i:i + step]).decode("ascii")
                       for i in range(0, len(whole), step))
        return "base64", _NEWLINES.sub("\r\n", data).encode("ascii")
    if len(lines) <= 10:
        data = sniff_qp
    else:
        data = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    return "quoted-printable", _NEWLINES.sub("\r\n", data).encode("ascii")


def _boundary(parts: Sequence[bytes]) -> str:
    """The stdlib generator's boundary: 15 '=', 19 random digits, '=='; never in the body."""
    base = "=" * 15 + f"{random.randrange(sys.maxsize):019d}" + "=="
    candidate, counter = base, 0
    while any(f"--{candidate}".encode() in p for p in parts):
        candidate = f"{base}.{counter}"
        counter += 1
    return candidate


def compose(headers: Sequence[tuple[str, str]], text: str, html: str, *,
            boundary: str | None = None) -> bytes:
    """A multipart/alternative mail (text, then HTML, both UTF-8), headers in this order."""
    text_cte, text_body = encode_text(text)
    html_cte, html_body = encode_text(html)
    text_part = (b'Content-Type: text/plain; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: " + text_cte.encode() + b"\r\n\r\n" + text_body)
    html_part = (b'Content-Type: text/html; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: " + html_cte.encode() + b"\r\n"
                 b"MIME-Version: 1.0\r\n\r\n" + html_body)
    b = boundary or _boundary((text_part, html_part))
    content_type = (f'Content-Type: multipart/alternative;\r\n boundary="{b}"\r\n'
                    if len(b) <= 60 else
                    _stdlib_fold("Content-Type", f'multipart/alternative; boundary="{b}"'))
    head = "".join([*(fold(n, v) for n, v in headers), "MIME-Version: 1.0\r\n", content_type])
    sep = f"\r\n--{b}\r\n".encode()
    return b"".join((head.encode("ascii"), b"\r\n--", b.encode(), b"\r\n", text_part, sep,
                     html_part, f"\r\n--{b}--\r\n".encode()))


def compose_email(headers: Sequence[tuple[str, str]], text: str, html: str,
                  attachments: Sequence[tuple[str, bytes, str, str]] = ()) -> bytes:
    """The same mail through the stdlib's EmailMessage (and any attachments after the
    alternative part): the reference `compose` is tested against, and the summary's path."""
    msg = EmailMessage(policy=SMTP)
    for name, value in headers:
        msg[name] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for filename, data, maintype, subtype in attachments:
        params = {"charset": "utf-8"} if maintype == "text" else {}
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename,
                           params=params)
    return msg.as_bytes()


class Renderer:
    def __init__(self, *, from_address: str, domain: str, override_dir: str | None = None):
        self.from_address = from_address
        self.domain = domain
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
               attachments: list[tuple[str, bytes, str, str]] | None = None) -> Rendered:
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
        data = (compose_email(fields, body, html, attachments) if attachments
                else compose(fields, body, html))
        return Rendered(kind, to, message_id, data)


def renderer_for(settings: Any) -> Renderer:
    """The renderer every role uses: the operator's templates first, then ours."""
    return Renderer(from_address=settings.notify.from_address, domain=settings.gateway.domain,
                    override_dir=settings.notify.templates_dir or None)
