"""The one reader of a mail body's options block, pure: the first run of `key: value` lines
(before a signature or a quoted reply), and the yes/no words in fr, en and ru.

Every body option reads through it: the voice options (mailgw.accounts.call_options), the
fax quality (mailgw.documents.quality), the cover page and header line
(mailgw.documents.cover_options), a preview or a test (mailgw.intake.trial). Each asks for
its own keys; the block is the same for all of them, so a mail's options never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

MAX_LINES = 500  # a body's first lines only: the block sits at the top
YES = frozenset({"yes", "y", "oui", "o", "true", "on", "1", "да"})
NO = frozenset({"no", "n", "non", "false", "off", "0", "нет"})

_LINE = re.compile(r"^\s*([^\W\d][\w-]{0,30})\s*:\s*(.*?)\s*$")
_STOP = re.compile(r"^(-- ?$|>|-{3,}|_{5,}|(le |on ).*(a écrit|wrote)\s*:\s*$)", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """Something in the options the ack must mention: a mailgw.codes.DETAILS key + params."""

    key: str
    params: dict[str, str] = field(default_factory=dict)


def read_lines(body: str) -> list[tuple[str, str]]:
    """The block's (key in lower case, value as written) pairs, in order."""
    pairs: list[tuple[str, str]] = []
    started = False
    for raw in body.replace("\r\n", "\n").split("\n")[:MAX_LINES]:
        line = raw.strip()
        if _STOP.match(line):
            break
        m = _LINE.match(line)
        if m is None:
            if started:
                break
            continue
        started = True
        pairs.append((m.group(1).lower(), m.group(2)))
    return pairs


def read_options(body: str, known: Collection[str], aliases: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """The block's values of the `known` keys (an alias read as its key; the last one
    wins); other keys are left out (read_lines has them)."""
    aliases = aliases or {}
    values: dict[str, str] = {}
    for key, value in read_lines(body):
        canonical = aliases.get(key, key)
        if canonical in known:
            values[canonical] = value
    return values


def yes_no(value: str) -> bool | None:
    """yes/no in en, fr or ru; None when it is neither."""
    word = value.strip().lower()
    return True if word in YES else False if word in NO else None


def read_switches(body: str, keys: Collection[str], aliases: Mapping[str, str]
                  ) -> tuple[dict[str, bool], tuple[Problem, ...]]:
    """The yes/no options among `keys` the block sets, and a Problem for each value that is
    neither yes nor no (that option is then left out)."""
    values = read_options(body, keys, aliases)
    chosen: dict[str, bool] = {}
    problems = []
    for key in keys:  # in the caller's order (that of the problems)
        written = values.get(key)
        if written is None:
            continue
        got = yes_no(written)
        if got is None:
            problems.append(Problem("option_value", {"option": key, "value": written[:40],
                                                     "allowed": "yes, no"}))
        else:
            chosen[key] = got
    return chosen, tuple(problems)
