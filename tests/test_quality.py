"""Fax qualities (mailgw.quality): the names in three languages, a mail's line over the
account's, and the ack's words."""

from __future__ import annotations

import pytest

from mailgw import quality
from mailgw.notify.messages import quality_words
from mailgw.notify.render import words


@pytest.mark.parametrize(("written", "expected"), [
    ("best", "best"), ("BEST", "best"), ("meilleure", "best"), ("лучшее", "best"),
    ("superfine", "best"), ("fine", "high"), ("haute", "high"), ("высокое", "high"),
    ("normal", "normal"), ("standard", "normal"), ("обычное", "normal"), ("ultra", None),
    ("", None), ("196", None)])
def test_names(written: str, expected: str | None) -> None:
    assert quality.parse(written) == expected


@pytest.mark.parametrize("body", ["quality: best", "Quality : best", "qualité: meilleure",
                                  "Hello,\n\nкачество: лучшее\nretries: 2\n",
                                  "résolution: superfine"])
def test_a_mail_line_overrides_the_account(body: str) -> None:
    assert quality.resolve(body, "normal") == ("best", ())


def test_no_line_or_a_line_past_the_signature_keeps_the_account_quality() -> None:
    assert quality.resolve("Hello\n", "normal") == ("normal", ())
    assert quality.resolve("Hello\n-- \nquality: best\n", "normal") == ("normal", ())
    assert quality.resolve("> quality: best\n", "best") == ("best", ())
    assert quality.resolve("", "nonsense") == ("high", ())  # a row from before: the default


def test_an_unusable_value_is_a_problem_and_the_account_quality_stays() -> None:
    chosen, problems = quality.resolve("quality: 400dpi\n", "normal")
    assert chosen == "normal"
    assert [p.key for p in problems] == ["option_value"]
    assert problems[0].params["value"] == "400dpi"
    assert problems[0].params["allowed"] == "normal, high, best"


def test_check_for_the_cli() -> None:
    assert quality.check("Fine") == "high"
    with pytest.raises(ValueError, match="normal, high, best"):
        quality.check("ultra")


def test_the_ack_words() -> None:
    assert quality_words("high", words("en")) == {"quality": "high", "quality_dpi": "204×196"}
    assert quality_words("best", words("fr")) == {"quality": "maximale",
                                                  "quality_dpi": "204×392"}
    assert quality_words("normal", words("ru"))["quality_dpi"] == "204×98"
    assert quality_words(None, words("en")) == {"quality": "", "quality_dpi": ""}
