"""123-Vocal's http.php parameters read as a mail's facts: pure, no store, no network.

An existing 123-Vocal integration calls `http.php?email=&pass=&numero=&ref=&transfert=&com=
&emetteur=&diff=&depot=` and only changes the host name. The four required values are
checked first, in 123-Vocal's order (87 email, 88 pass, 89 numero, 90 ref): they need no
account and write nothing. Everything else becomes the Subject command and body option
lines of mailgw.intake.requests, so the decision is the mail's (82 … 86, 91, 93 … 96).

The Subject's grammar splits on `:`, so no value may add a field: a `:` in pass, numero
or ref becomes the full-width `：` (a wrong password, an invalid number, an unknown ref,
as they would be). `diff` is the `when` field: a value that is not a date becomes one that
is date-like but impossible, so it is refused with 85, never sent now. `com` is only a
comment: without `diff`, a comment whose last field looks like a date would be read as
the `when`, so a word joiner (U+2060, invisible) is put after it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from mailgw.codes import Code
from mailgw.intake import requests

# The parameters, exactly as 123-Vocal names them.
NAMES = ("email", "pass", "numero", "ref", "transfert", "com", "emetteur", "diff", "depot")
REQUIRED = (("email", Code.NO_SENDER), ("pass", Code.NO_PASSWORD),
            ("numero", Code.NO_NUMBER), ("ref", Code.NO_REF))
# Call options, under the names mailgw.accounts.call_options knows them by (its aliases:
# transfert -> transfer, emetteur -> callerid, depot -> voicemail, `1` = only).
OPTIONS = ("transfert", "emetteur", "depot")

_DATE_LIKE = re.compile(r"[0-9]{8,16}[sS]?")  # what the Subject grammar reads as a `when`
_SPACES = re.compile(r"\s+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
IMPOSSIBLE_WHEN = "00000000"  # date-like, not 12 digits: refused with 85
WORD_JOINER = "\u2060"
FULLWIDTH_COLON = "\uff1a"


@dataclass(frozen=True)
class VocalRequest:
    """What intake gets from one http.php call."""

    email: str
    subject: str = field(repr=False)  # holds the password
    options: dict[str, str]


def values(query: Mapping[str, str], form: Mapping[str, str] | None = None) -> dict[str, str]:
    """The parameters as PHP's $_REQUEST gives them: the query's, a POST body's over
    them; trimmed, control characters dropped (a Subject is one line)."""
    merged = {**{k: v for k, v in query.items() if k in NAMES},
              **{k: v for k, v in (form or {}).items() if k in NAMES}}
    return {k: _CONTROLS.sub(" ", v).strip() for k, v in merged.items()}


def decode_pairs(raw: bytes) -> dict[str, str]:
    """A query string or an urlencoded body: UTF-8, else Windows-1252 value by value (older
    French sites send their forms in it; `é` must not become `\ufffd`). The last value of a
    repeated name wins, as in PHP."""
    pairs = urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True,
                                   encoding="latin-1")  # %XX back to the exact bytes
    return {_text(k): _text(v) for k, v in pairs}


def _text(value: str) -> str:
    data = value.encode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def missing(params: Mapping[str, str]) -> Code | None:
    """87, 88, 89 or 90 for the first required value that is empty (123-Vocal's order)."""
    for name, code in REQUIRED:
        if not params.get(name, ""):
            return code
    return None


def when_field(diff: str) -> str:
    """`diff` as the Subject's `when`: HHMMDDMMYYYY[s] as given, anything else impossible."""
    text = _SPACES.sub("", diff)
    if not text or _DATE_LIKE.fullmatch(text):
        return text
    return IMPOSSIBLE_WHEN + ("s" if text[-1:] in ("s", "S") else "")


def comment_field(com: str, when: str) -> str:
    """`com` as the Subject's comment, never read as the `when`."""
    if when or not com:
        return com
    last = next((part for part in reversed(com.split(":")) if part.strip()), "")
    return com + WORD_JOINER if _DATE_LIKE.fullmatch(_SPACES.sub("", last)) else com


def _one_field(value: str) -> str:
    return value.replace(":", FULLWIDTH_COLON)


def read(params: Mapping[str, str]) -> VocalRequest | Code:
    """The request intake decides on, or the code of a required value that is empty."""
    code = missing(params)
    if code is not None:
        return code
    when = when_field(params.get("diff", ""))
    subject = requests.subject(_one_field(params["pass"]), _one_field(params["numero"]),
                               _one_field(params["ref"]),
                               comment_field(params.get("com", ""), when), when)
    options = {name: params[name] for name in OPTIONS if params.get(name)}
    return VocalRequest(params["email"], subject, options)
