"""The notices' vocabulary: their words in each language, and times written the way each
language writes them (the templates and mailgw.notify.messages use both).

A language without a table of its own gets the English words (`words`).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

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
           "summary": "Bilan", "in_progress": "En cours", "delivered_all": "Succès",
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
           "outcome": "Résultat", "ack_accepted": "Accepté", "ack_refused": "Refusé",
           "ack_preview": "Aperçu", "fax_received": "Fax reçu", "fax_incomplete": "Incomplet",
           "scheduled": "Différé", "queued": "En attente", "sending": "En cours d'envoi"},
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
           "outcome": "Outcome", "ack_accepted": "Accepted", "ack_refused": "Refused",
           "ack_preview": "Preview", "fax_received": "Fax received",
           "fax_incomplete": "Incomplete", "scheduled": "Deferred", "queued": "Waiting",
           "sending": "Sending"},
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
           "summary": "Итог", "in_progress": "В процессе", "delivered_all": "Успешно",
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
           "outcome": "Результат", "ack_accepted": "Принято", "ack_refused": "Отклонено",
           "ack_preview": "Предпросмотр", "fax_received": "Факс получен",
           "fax_incomplete": "Неполный", "scheduled": "Отложено", "queued": "В очереди",
           "sending": "Отправляется"},
}
# The badge of an HTML part: its colour (a tone of the web space's palette) by delivery state
# or job outcome, and the sign shown before its word (the Sent page's signs).
TONES = {"delivered": "ok", "partial": "warn", "failed": "bad", "expired": "bad",
         "cancelled": "neutral", "in_progress": "info", "delivered_all": "ok",
         "delivered_none": "bad"}
SIGNS = {"ok": "✔", "warn": "◑", "bad": "✖", "info": "◔", "neutral": "⊘"}
DATE_FORMATS = {"fr": "%d/%m/%Y %H:%M:%S", "en": "%Y-%m-%d %H:%M:%S", "ru": "%d.%m.%Y %H:%M:%S"}


def words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["en"])


def badge(tone: str, word: str) -> dict[str, str]:
    """The template's `tone`, `sign` and `badge` (the word on the badge)."""
    return {"tone": tone, "sign": SIGNS.get(tone, ""), "badge": word}


def local_time(value: datetime | None, tz: str, lang: str) -> str:
    """A time in the account's zone, written the way its language writes dates."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(tz))
    return f"{local.strftime(DATE_FORMATS.get(lang, DATE_FORMATS['en']))} {local.tzname()}"
