"""Fax qualities, as OVH sells them: `normal` 204×98, `high` 204×196 (the default), `best`
204×392 dpi. An account has one (`mailgw account set --quality`); a fax mail's body line
`quality: best` (`qualité:`, `качество:`), read by the same options-block reader as the
other body options (mailgw.accounts.body_options), overrides it for that mail. The job keeps it in
its options (`{"quality": …}`), and each driver gets it as `CallRequest.quality`.
"""

from __future__ import annotations

from mailgw.accounts.body_options import Problem, read_options
from mailgw.documents.render import QUALITIES

DEFAULT = "high"
NAMES = tuple(QUALITIES)  # normal, high, best
KEY = "quality"
ALIASES = {"qualité": KEY, "qualite": KEY, "качество": KEY, "resolution": KEY,
           "résolution": KEY}
# Values in the three languages, and the fax world's words (standard, fine, superfine).
_VALUES = {
    "normal": "normal", "normale": "normal", "standard": "normal", "обычное": "normal",
    "обычная": "normal", "нормальное": "normal", "нормальная": "normal",
    "high": "high", "fine": "high", "haute": "high", "élevée": "high", "elevee": "high",
    "высокое": "high", "высокая": "high",
    "best": "best", "superfine": "best", "meilleure": "best", "maximale": "best",
    "max": "best", "лучшее": "best", "наилучшее": "best", "лучшая": "best", "максимальное": "best",
    "максимальная": "best",
}


def parse(value: str) -> str | None:
    """The canonical quality a value names (any case, in en/fr/ru), None when it names none."""
    return _VALUES.get(value.strip().lower())


def check(value: str) -> str:
    """For the CLI: the canonical quality, or ValueError naming the accepted ones."""
    got = parse(value)
    if got is None:
        raise ValueError(f"quality: expected one of {', '.join(NAMES)}, got {value!r}")
    return got


def of_account(value: str | None) -> str:
    return value if value in QUALITIES else DEFAULT


def dpi(quality: str) -> str:
    """"204×196" for the ack and notices."""
    return f"204×{QUALITIES.get(quality, QUALITIES[DEFAULT])}"


def of_options(options: dict[str, str] | None) -> str:
    """A job's quality from its stored options (jobs before qualities: the default)."""
    return of_account((options or {}).get(KEY))


def resolve(body: str, account_quality: str) -> tuple[str, tuple[Problem, ...]]:
    """A fax mail's quality (pure): its body's `quality:` line over the account's. A value
    that names no quality is reported (the ack says so) and the account's is used. Other
    `key: value` lines are the mail's own text, not options: never reported."""
    written = read_options(body, (KEY,), ALIASES).get(KEY)
    if written is None:
        return of_account(account_quality), ()
    chosen = parse(written)
    if chosen is None:
        return of_account(account_quality), (Problem("option_value", {
            "option": KEY, "value": written[:40], "allowed": ", ".join(NAMES)}),)
    return chosen, ()
