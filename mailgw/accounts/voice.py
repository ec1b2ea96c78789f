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
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy.orm import Session

from mailgw.codes import detail
from mailgw.dispatch.drivers.voice_outcomes import parse_outcome
from mailgw.ops.config import RetrySettings
from mailgw.recipients import normalize_number
from mailgw.store import library
from mailgw.store.models import Account, Job, VoiceMessage

# -- the message library ---------------------------------------------------------------------

REF_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class VoiceError(ValueError):
    """A library or caller-ID request that cannot be served; the message says why."""


def normalize_ref(ref: str) -> str | None:
    """The library key for a ref (trimmed, lower-case), or None when it cannot name one."""
    ref = ref.strip()
    return ref.lower() if REF_RE.match(ref) else None


def library_target(ref: str | None, comment: str | None) -> tuple[str, str | None] | None:
    """(ref, comment) of a store request: `password::REF:comment:` as the Subject grammar
    reads it, or `password:::REF:comment:` (the ref then sits in the comment field; with no
    number and a sound attached, that mail could only have been refused with 89)."""
    if ref:
        return ref, comment
    if comment:
        first, _, rest = comment.partition(":")
        if normalize_ref(first):
            return first.strip(), rest.strip() or None
    return None


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

OPTIONS = ("transfer", "welcome", "callerid", "retries", "voicemail")
ALIASES = {"transfert": "transfer", "emetteur": "callerid", "émetteur": "callerid",
           "caller_id": "callerid", "caller-id": "callerid", "sender_id": "callerid",
           "accueil": "welcome", "retry": "retries", "essais": "retries",
           "depot": "voicemail", "dépôt": "voicemail"}
MAX_RETRIES = 9
_YES = {"yes", "y", "oui", "o", "true", "on", "1", "да"}
_NO = {"no", "n", "non", "false", "off", "0", "нет", "none"}
_VOICEMAIL = {"leave": "leave", "yes": "leave", "oui": "leave", "да": "leave",
              "no": "no", "non": "no", "never": "no", "нет": "no",
              "only": "only", "drop": "only", "seulement": "only", "только": "only"}
_OFF = {"none", "no", "non", "off", "hidden", "masqué", "masque", "нет", "-"}
_LINE = re.compile(r"^\s*([^\W\d][\w-]{0,30})\s*:\s*(.*?)\s*$")
_STOP = re.compile(r"^(-- ?$|>|-{3,}|_{5,}|(le |on ).*(a écrit|wrote)\s*:\s*$)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """Something in the options the ack must mention: a mailgw.codes.DETAILS key + params."""

    key: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OptionsBlock:
    values: dict[str, str]  # canonical key -> value as written (the last one wins)
    problems: tuple[Problem, ...] = ()


def parse_block(body: str, known: Collection[str] = OPTIONS,
                aliases: Mapping[str, str] = ALIASES, *, report_unknown: bool = True
                ) -> OptionsBlock:
    """The options block of a mail body: the first run of `key: value` lines (pure).

    Unknown keys are reported (unless `report_unknown` is off: a fax mail's body is free
    text, read only for the fax's own options, mailgw.documents.quality). The voice options are the
    default `known`; a fax mail reads `quality` with the same reader.
    """
    values: dict[str, str] = {}
    problems: list[Problem] = []
    started = False
    for raw in body.replace("\r\n", "\n").split("\n")[:500]:
        line = raw.strip()
        if _STOP.match(line):
            break
        m = _LINE.match(line)
        if m is None:
            if started:
                break
            continue
        started = True
        key, value = m.group(1).lower(), m.group(2)
        canonical = aliases.get(key, key)
        if canonical not in known:
            if report_unknown:
                problems.append(Problem("option_unknown", {"option": key[:40],
                                                           "known": ", ".join(known)}))
            continue
        if key in ("depot", "dépôt"):  # 123-Vocal's depot=1: a voicemail drop
            value = "only" if value.strip() in ("1", "oui", "yes") else "leave"
        values[canonical] = value
    return OptionsBlock(values, tuple(problems))


def validate(values: dict[str, str], region: str, verified: Collection[str]
             ) -> tuple[dict[str, str], list[Problem]]:
    """Options as drivers get them (numbers in E.164, words canonical), and what was not used.

    An empty value, or "none" for a number, switches the option off (over a default).
    """
    out: dict[str, str] = {}
    problems: list[Problem] = []
    for key, value in values.items():
        word = value.strip().lower()
        if key in ("transfer", "callerid"):
            if not word or word in _OFF:
                out[key] = ""
                continue
            number = normalize_number(value, region)
            if number is None:
                problems.append(Problem("option_number", {"option": key, "value": value[:40]}))
            elif key == "callerid" and number not in verified:
                problems.append(Problem("callerid_unverified", {"value": number}))
                out[key] = ""
            else:
                out[key] = number
        elif key == "welcome":
            if word in _YES or word in _NO or not word:
                out[key] = "yes" if word in _YES else ""
            else:
                problems.append(Problem("option_value", {"option": key, "value": value[:40],
                                                         "allowed": "yes, no"}))
        elif key == "retries":
            if word.isdigit() and int(word) <= MAX_RETRIES:
                out[key] = str(int(word))
            else:
                problems.append(Problem("option_value", {"option": key, "value": value[:40],
                                                         "allowed": f"0–{MAX_RETRIES}"}))
        elif key == "voicemail":
            if word in _VOICEMAIL or not word:
                out[key] = _VOICEMAIL.get(word, "leave")
            else:
                problems.append(Problem("option_value", {"option": key, "value": value[:40],
                                                         "allowed": "leave, no, only"}))
    return out, problems


def effective(defaults: dict[str, str], chosen: dict[str, str]) -> dict[str, str]:
    """Account defaults overridden by the mail's options; switched-off options dropped."""
    merged = {**defaults, **chosen}
    merged = {k: v for k, v in merged.items() if v and not (k == "voicemail" and v == "leave")}
    return {k: merged[k] for k in OPTIONS if k in merged}


def _json_options(text: str | None) -> dict[str, str]:
    """Options stored as a JSON object; anything else reads as none."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def load_defaults(account: Account) -> dict[str, str]:
    return _json_options(account.voice_options)


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


@dataclass(frozen=True)
class ResolvedOptions:
    options: dict[str, str]  # what the job stores and the driver gets
    problems: tuple[Problem, ...]


def resolve(body: str, defaults: dict[str, str], region: str, verified: Collection[str]
            ) -> ResolvedOptions:
    """A mail's options (pure): its body's block over the account's defaults."""
    block = parse_block(body)
    chosen, problems = validate(block.values, region, verified)
    return ResolvedOptions(effective(defaults, chosen), (*block.problems, *problems))


def describe_options(options: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in options.items())


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
