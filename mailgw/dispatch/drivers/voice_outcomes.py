"""The sentences drivers tell a voice call's outcome with (CallResult.detail / error_text).

Notices and the CSV report recognise them (parse_outcome) and say them in the account's
language (mailgw.accounts.voice.describe); a driver's other texts are shown as they are.
"""

from __future__ import annotations

import re

OUTCOMES: dict[str, str] = {
    "played": "answered, message played in full ({heard} s)",
    "played_star": "answered, * pressed, message played in full ({heard} s)",
    "heard_part": "answered, hung up after {heard} s of {length} s",
    "transferred": "answered, 9 pressed after {heard} s: transferred to {number}",
    "machine_left": "answering machine: message left after the beep ({heard} s)",
    "machine_not_left": "answering machine: hung up without leaving the message",
    "machine_no_star": "answering machine: * never pressed at the welcome prompt, "
                       "message not left",
    "no_star": "answered, but * was not pressed at the welcome prompt: message not played",
    "dropped": "dropped in the voicemail without ringing ({heard} s)",
    "no_voicemail": "no voicemail box on this line: message not dropped",
}
_PATTERNS = {key: re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+?)", re.escape(text))
                             + "$") for key, text in OUTCOMES.items()}


def outcome_text(key: str, **params: object) -> str:
    return OUTCOMES[key].format(**params)


def parse_outcome(text: str | None) -> tuple[str, dict[str, str]] | None:
    """(outcome key, params) for a sentence of OUTCOMES, None for any other text."""
    if not text:
        return None
    for key, pattern in _PATTERNS.items():
        m = pattern.match(text)
        if m:
            return key, m.groupdict()
    return None
