"""Fuzz targets: one module per reader of untrusted input.

Each module has ``one_input(data)``, which calls the product function the way intake (or the
HTTP endpoint) calls it and raises only for a finding: an exception the API does not allow,
or a broken promise (text that cannot be stored, a reply code that does not exist). It also
has ``seeds()``, the starting corpus. Nothing here imports atheris, so
tests/unit/test_fuzz_regressions.py replays the findings in the normal test suite.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Target name -> the packages atheris instruments for coverage (stdlib ones included where
# the reader is mostly the stdlib's: the email package for MIME, csv for lists).
TARGETS: dict[str, tuple[str, ...]] = {
    "mime": ("mailgw", "email", "tnefparse"),
    "subject": ("mailgw", "phonenumbers", "zoneinfo"),
    "recipients": ("mailgw", "phonenumbers", "csv"),
    "tnef": ("mailgw", "tnefparse"),
    "callbacks": ("mailgw", "email", "json"),
}


class Finding(AssertionError):
    """A result the function under test promises never to give."""


def corpus_dir() -> Path | None:
    """The test corpus: $MAILGW_CORPUS, else tests/corpus."""
    for candidate in (os.environ.get("MAILGW_CORPUS"), ROOT / "tests" / "corpus"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def storable(what: str, text: str | None) -> None:
    """Text that reaches the store or a reply must encode as UTF-8 (no lone surrogates)."""
    if text is None:
        return
    if not isinstance(text, str):
        raise Finding(f"{what} is {type(text).__name__}, not str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Finding(f"{what} cannot be stored: {exc}") from exc
