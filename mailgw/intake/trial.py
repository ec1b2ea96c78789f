"""A preview or a test before a campaign (MediasFlow's "Envoyer un test", OVH's preview).

Pure, like the decision it serves (mailgw.intake.decide). A fax mail's body line
`preview: yes` (`aperçu: oui`, `предпросмотр: да`), or the Subject's numbers replaced by
the word `preview` (mailgw.subject_parser), asks for a preview: the mail is checked as usual
but never dialled; no job is written and no credit taken, and the ack carries the rendered
pages (mailgw.intake.preview renders them, in the sandbox). `test: yes` (`essai: oui`,
`тест: да`) sends the fax only to the account's own test number (`mailgw account set
--test-number`), whatever the Subject or the list say; without one, 89. Either way the
first recipient's list columns still personalise the cover page.
"""

from __future__ import annotations

from typing import Literal

from mailgw.accounts.body_options import Problem, read_switches
from mailgw.intake.verdict import Found
from mailgw.recipients import ListEntry

Mode = Literal["preview", "test"]
PREVIEW: Mode = "preview"
TEST: Mode = "test"
ALIASES = {"aperçu": PREVIEW, "apercu": PREVIEW, "prévisualisation": PREVIEW,
           "previsualisation": PREVIEW, "предпросмотр": PREVIEW, "просмотр": PREVIEW,
           "essai": TEST, "тест": TEST, "проверка": TEST}


def mode(body: str, subject_preview: bool = False) -> tuple[Mode | None, tuple[Problem, ...]]:
    """The mail's mode from its body (and the Subject's `preview` word): preview wins over
    test, since it sends nothing. A value that is neither yes nor no is reported."""
    written, problems = read_switches(body, (TEST, PREVIEW), ALIASES)
    chosen: Mode | None = PREVIEW if subject_preview else None
    for key, got in written.items():  # TEST first: a later PREVIEW wins
        if got and chosen != PREVIEW:
            chosen = TEST if key == TEST else PREVIEW
    return chosen, problems


def _first(f: Found) -> list[ListEntry]:
    """The recipient a preview or a test shows: the list's first row (its columns fill the
    cover), else the first number given."""
    with_columns = [r for r in f.recipients if r.columns]
    return (with_columns or f.recipients)[:1]


def first_only(f: Found) -> None:
    """A preview shows what the first recipient would get: the others are not listed."""
    f.recipients = _first(f)
    f.steps.append("preview: rendered for the first recipient"
                   + (f" ({f.recipients[0].number})" if f.recipients else " (no number)")
                   + ", never dialled, no credit taken")


def to_test_number(f: Found, test_number: str) -> None:
    """Every number replaced by the account's test number, keeping the first recipient's
    list columns for the cover page."""
    first = _first(f)
    f.recipients = [ListEntry(test_number, first[0].columns if first else ())]
    f.invalid, f.duplicates, f.from_list = [], 0, False
    f.steps.append(f"test: sent only to the account's test number {test_number}")
