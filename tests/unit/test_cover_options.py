"""The body's `cover:` and `header:` lines over the account's settings (pure)."""

from __future__ import annotations

import pytest

from mailgw.documents import cover_options


@pytest.mark.parametrize(("body", "account", "expected"), [
    ("Hello", (False, False), {}),
    ("Hello", (True, True), {"cover": "yes", "header": "yes"}),
    ("cover: yes\n\nHello", (False, False), {"cover": "yes"}),
    ("Page-de-garde : oui\nEn-tête: oui\n", (False, False), {"cover": "yes", "header": "yes"}),
    ("титульная: да\nзаголовок: нет\n", (False, True), {"cover": "yes"}),
    ("cover: no\n", (True, False), {}),
    ("Bonjour,\n\ncover: yes\n", (False, False), {"cover": "yes"}),  # after a greeting
    ("quality: best\nnote: x\n\ncover: yes\n", (False, False), {}),  # not the first block
    ("-- \ncover: yes\n", (False, False), {}),  # a signature
])
def test_resolve(body: str, account: tuple[bool, bool], expected: dict[str, str]) -> None:
    assert cover_options.resolve(body, *account) == (expected, ())


def test_a_value_neither_yes_nor_no_is_told_and_the_account_decides() -> None:
    got, problems = cover_options.resolve("cover: maybe\n", True, False)
    assert got == {"cover": "yes"}
    assert [(p.key, p.params["value"]) for p in problems] == [("option_value", "maybe")]


def test_check_for_the_cli() -> None:
    assert cover_options.check("OUI") is True and cover_options.check("no") is False
    with pytest.raises(ValueError, match="yes or no"):
        cover_options.check("perhaps")
