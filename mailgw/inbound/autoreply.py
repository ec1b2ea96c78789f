"""Mail a machine wrote (bounces, out-of-office, receipts, lists, our own notices).

RFC 3834 asks that such mail is never answered; for mailgw it never becomes a job either
(no loops, no backscatter). :func:`auto_reply_reason` names the first signal found.
"""

from __future__ import annotations

import re
from email.message import Message

from mailgw.inbound.headers import header_text, raw_header
from mailgw.vocab import LOOP_HEADER  # the one definition

_AUTO_SUBJECT = re.compile(
    r"""^\s*(?:
      undeliver(?:able|ed)
    | delivery\s+(?:status\s+notification|notification|failure|failed|has\s+failed|delayed)
    | returned\s+mail | returned\s+to\s+sender
    | mail\s+delivery\s+(?:failed|failure|system|subsystem|problem)
    | mail\s+system\s+error | failure\s+notice | delayed\s+mail
    | warning:\s*could\s+not\s+send | message\s+delayed
    | non[-\s]remis | non\s+distribu | unzustellbar | nicht\s+zustellbar | onbestelbaar
    | non\s+recapitabile | no\s+se\s+puede\s+entregar | не\s*доставлено | недоставлен
    | automatic\s+reply | auto(?:matic)?[-\s]?(?:reply|response) | autorespon | auto\s*:
    | out\s+of\s+(?:the\s+)?office | r[ée]ponse\s+automatique | absence\b
    | absent(?:e|\(e\))?\s+du\s+bureau | automatische\s+antwort | abwesenheitsnotiz
    | automatisch\s+antwoord | risposta\s+automatica | respuesta\s+autom[aá]tica
    | resposta\s+autom[aá]tica | automatisk\s+svar | autosvar | automaattinen\s+vastaus
    | automatyczna\s+odpowied[zź] | автоответ | автоматический\s+ответ
    | 自动回复 | 自動回覆 | 自動応答 | 自動返信
    | read\s*: | not\s+read\s*: | lu\s*: | non\s+lu\s*: | gelesen\s*: | ungelesen\s*:
    | letto\s*: | le[ií]do\s*: | lido\s*: | gelezen\s*: | прочитано\s*:
    | read\s+receipt | return\s+receipt | disposition\s+notification
    | email\s+feedback\s+report
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_DAEMON_LOCAL = re.compile(r"^(?:mailer[-_]?daemon|mail[-_]?daemon|postmaster)$", re.IGNORECASE)
_DAEMON_NAME = re.compile(r"mailer[-_ ]?daemon|mail delivery (?:sub)?system", re.IGNORECASE)


def auto_reply_reason(
    msg: Message,
    envelope_from: str | None,
    from_addr: str | None,
    subject: str | None,
    report: str | None,
) -> str | None:
    """The first RFC 3834 signal that says a machine wrote this mail, or None.

    Such mail must never become a job nor be answered (no loops, no backscatter).
    """
    if envelope_from is not None:
        env = envelope_from.strip().strip("<>").strip()
        if not env:
            return "null envelope sender"
        if _DAEMON_LOCAL.match(env.rsplit("@", 1)[0]):
            return f"envelope sender {env}"
    if raw_header(msg, LOOP_HEADER) is not None:
        return f"{LOOP_HEADER} present (our own mail)"
    auto = header_text(msg, "auto-submitted")
    if auto:
        token = re.split(r"[\s;(]", auto.lower(), maxsplit=1)[0]
        if token != "no":
            return f"Auto-Submitted: {auto}"
    if report:
        return f"Content-Type {report}"
    precedence = (header_text(msg, "precedence") or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if raw_header(msg, "list-id") is not None:
        return "List-Id present"
    for header in (
        "X-Auto-Response-Suppress",
        "X-MS-Exchange-Inbox-Rules-Loop",
        "X-Failed-Recipients",
        "X-Autoreply",
        "X-Autorespond",
    ):
        if raw_header(msg, header) is not None:
            return f"{header} present"
    return_path = header_text(msg, "return-path")
    if return_path is not None and re.fullmatch(r"<?\s*>?", return_path):
        return "Return-Path: <>"
    if from_addr and _DAEMON_LOCAL.match(from_addr.rsplit("@", 1)[0].strip('"')):
        return f"From: {from_addr}"
    raw_from = header_text(msg, "from")
    if raw_from and _DAEMON_NAME.search(raw_from):
        return f"From: {raw_from[:80]}"
    found = _AUTO_SUBJECT.search(subject) if subject else None
    if found:  # the words that matched, not the Subject: it may hold a password
        return f"Subject: {found.group(0).strip()[:80]}"
    return None
