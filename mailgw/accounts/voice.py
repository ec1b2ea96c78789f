"""Voice messages: the account's library of recorded messages, verified caller IDs, and the
call options a mail's body (or the account) sets.

**Library.** Each account keeps recorded messages under a ref (a number or a name:
letters, digits, `-` and `_`, at most 40, compared without case). A mail to the voice
address with no number, a ref and a sound attached (`password::REF:comment:`, or
`password:::REF:comment:`) stores or replaces message REF (ack 80, "message REF stored,
N s"); `mailgw voice add ACCOUNT REF FILE` does the same. A voice job then names REF
(`password:numbers:REF`), or attaches a sound for that job only (with both, the sound is
played and REF is kept as the client's reference, as for a fax). The audio is stored
converted to the drivers' format (8 kHz mono 16-bit PCM WAV), and a job keeps its own copy:
replacing REF later never changes a job accepted before.

**Options** (123-Vocal's call options). The Subject has no room for them, so they are lines
`key: value` in the mail's body, one per line; the block is the first run of such lines
(text before it, such as a greeting, is fine; it ends at the first other line; the signature
after `-- ` and quoted or forwarded text are never read):

    transfer: 01 70 70 99 01     callee presses 9 → transferred to this number ("none": off)
    welcome: yes                 a prompt asks the callee to press * before the message plays
    callerid: 01 70 70 99 00     the number shown; only a verified number of the account
                                 (`mailgw voice callerid add`); "hidden": no number shown
    retries: 2                   calls again on busy or no answer, at most 2 more times
    voicemail: leave | no | only leave the message on an answering machine (default); hang
                                 up on one (the number is called again, as for no answer); or
                                 drop it in the voicemail without ringing (no person called)

123-Vocal's HTTP names are understood too (`transfert`, `emetteur`, `depot: 1` = voicemail
only). An account sets defaults with `mailgw voice options ACCOUNT key=value…`; a mail's
options override them. Unknown keys and unusable values are reported in the ack (never
silently ignored) and the call goes without them. A fax mail's `quality:` line is read by
the same block reader (mailgw.documents.quality).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy.orm import Session

from mailgw.accounts.call_options import (  # the pure half, importable from here too
    ALIASES,
    OPTIONS,
    VoiceError,
    _json_options,
    load_defaults,
    normalize_ref,
    validate,
)
from mailgw.codes import detail
from mailgw.dispatch.drivers.voice_outcomes import parse_outcome
from mailgw.ops.config import RetrySettings
from mailgw.recipients import normalize_number
from mailgw.store import library
from mailgw.store.models import Account, Job, VoiceMessage

# -- the message library ---------------------------------------------------------------------


@dataclass(frozen=True)
class MessageInfo:
    ref: str
    duration: float
    created_at: datetime
    source_name: str | None


def find_message(s: Session, account_id: int, ref: str) -> VoiceMessage | None:
    key = normalize_ref(ref)
    return None if key is None else library.find_message(s, account_id, key)


def store_message(s: Session, account_id: int, ref: str, audio: bytes, duration: float,
                  source_name: str | None = None) -> bool:
    """Store or replace message `ref`; True when it replaced an earlier one."""
    key = normalize_ref(ref)
    if key is None:
        raise VoiceError(f"{ref!r} cannot name a message: letters, digits, - and _ (at most 40)")
    return library.put_message(s, account_id, key, audio, duration, source_name)


def list_messages(s: Session, account_id: int) -> list[MessageInfo]:
    return [MessageInfo(*row) for row in library.messages(s, account_id)]


def delete_message(s: Session, account_id: int, ref: str) -> bool:
    key = normalize_ref(ref)
    return key is not None and library.delete_message(s, account_id, key)


# -- verified caller IDs ---------------------------------------------------------------------

def add_caller_id(s: Session, account: Account, number: str) -> str:
    """Record a number the operator checked the account owns; returns it in E.164."""
    e164 = normalize_number(number, account.region)
    if e164 is None:
        raise VoiceError(f"{number!r} is not a valid number")
    if e164 not in caller_ids(s, account.id):
        library.add_caller_id(s, account.id, e164)
    return e164


def remove_caller_id(s: Session, account: Account, number: str) -> bool:
    e164 = normalize_number(number, account.region) or number
    return library.delete_caller_id(s, account.id, e164)


def caller_ids(s: Session, account_id: int) -> list[str]:
    return library.caller_ids(s, account_id)


# -- call options ----------------------------------------------------------------------------


def set_defaults(s: Session, account: Account, pairs: Iterable[str], *, clear: bool = False
                 ) -> dict[str, str]:
    """`key=value` pairs (the CLI's) become the account's defaults; raises VoiceError when a
    key or value is not usable, so an operator never stores a silent mistake."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            key, sep, value = pair.partition(":")
        key = ALIASES.get(key.strip().lower(), key.strip().lower())
        if not sep or key not in OPTIONS:
            raise VoiceError(f"{pair!r}: expected KEY=VALUE with KEY one of {', '.join(OPTIONS)}")
        raw[key] = value.strip()
    checked, problems = validate(raw, account.region, caller_ids(s, account.id))
    if problems:
        raise VoiceError("; ".join(detail(p.key, "en", **p.params) for p in problems))
    current = {} if clear else load_defaults(account)
    current.update(checked)
    current = {k: v for k, v in current.items() if v}
    account.voice_options = json.dumps(current, sort_keys=True) if current else None
    return current


def job_options(job: Job) -> dict[str, str]:
    return _json_options(job.options)


def retry_policy(policy: RetrySettings, options: dict[str, str]) -> RetrySettings:
    """`retries: N` = at most N more calls after the first (on busy, no answer …)."""
    retries = options.get("retries")
    if retries is None or not retries.isdigit():
        return policy
    return replace(policy, max_attempts=int(retries) + 1)


# -- what the dispatcher hands a driver ------------------------------------------------------

_CACHE: OrderedDict[tuple[int, int], tuple[bytes | None, dict[str, str]]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8  # a job's audio and options never change: campaigns read them once


def load_call(store: Any, job_id: int) -> tuple[bytes | None, dict[str, str]]:
    """A voice job's audio (WAV) and call options, cached for the next numbers of the job."""
    key = (id(store), job_id)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    with store.read() as s:
        audio, options = library.job_call(s, job_id)
    value = (audio, _json_options(options))
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


# -- voice outcomes: what a call came to, told by the driver in English, localized here ------
def describe(text: str | None, words: dict[str, str]) -> str | None:
    """An outcome sentence in the account's language (`words` = notify.words.WORDS[lang]);
    None when the text is not one of ours."""
    parsed = parse_outcome(text)
    if parsed is None:
        return None
    key, params = parsed
    template = words.get("voice_" + key)
    if template is None:
        return text
    if "number" in params:
        params["number"] = _international(params["number"])
    return template.format(**params)


def _international(number: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(number),
                                          phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return number
