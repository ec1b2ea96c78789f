"""Voice call options and library refs, pure: a mail body's `transfer: …` block read and
checked, an account's defaults applied, a message ref normalised. No store here, so the
decision (mailgw.intake.decide) can use it; the library and caller IDs' rows are in
mailgw.accounts.voice and mailgw.store.library."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailgw.accounts.body_options import NO, YES, Problem, read_lines
from mailgw.recipients import normalize_number

if TYPE_CHECKING:
    from mailgw.store.models import Account


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


OPTIONS = ("transfer", "welcome", "callerid", "retries", "voicemail")


ALIASES = {"transfert": "transfer", "emetteur": "callerid", "émetteur": "callerid",
           "caller_id": "callerid", "caller-id": "callerid", "sender_id": "callerid",
           "accueil": "welcome", "retry": "retries", "essais": "retries",
           "depot": "voicemail", "dépôt": "voicemail"}


MAX_RETRIES = 9


_YES = YES


_NO = NO | {"none"}  # "none" switches a voice option off, too


_VOICEMAIL = {"leave": "leave", "yes": "leave", "oui": "leave", "да": "leave",
              "no": "no", "non": "no", "never": "no", "нет": "no",
              "only": "only", "drop": "only", "seulement": "only", "только": "only"}


_OFF = {"none", "no", "non", "off", "hidden", "masqué", "masque", "нет", "-"}


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
    for key, value in read_lines(body):  # the one reader (mailgw.accounts.body_options)
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
