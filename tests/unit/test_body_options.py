"""The one reader of a mail body's options block (mailgw.accounts.body_options)."""

from __future__ import annotations

from mailgw.accounts.body_options import Problem, read_lines, read_options, read_switches

BODY = ("Bonjour,\n\nquality: best\nqualité: normal\nCover: oui\nheader: peut-être\n"
        "\nquality: high\n-- \nsignature: here\n")


def test_the_first_block_only_in_order_keys_in_lower_case() -> None:
    assert read_lines(BODY) == [("quality", "best"), ("qualité", "normal"), ("cover", "oui"),
                                ("header", "peut-être")]
    assert read_lines("> quoted: x\nquality: best") == []  # a quoted reply ends the search


def test_an_alias_is_its_key_and_the_last_one_wins() -> None:
    assert read_options(BODY, ("quality",), {"qualité": "quality"}) == {"quality": "normal"}
    assert read_options(BODY, ("cover",)) == {"cover": "oui"}


def test_switches_in_the_callers_order_with_a_problem_for_neither() -> None:
    chosen, problems = read_switches(BODY, ("header", "cover"), {})
    assert chosen == {"cover": True}
    assert problems == (Problem("option_value", {"option": "header", "value": "peut-être",
                                                 "allowed": "yes, no"}),)
