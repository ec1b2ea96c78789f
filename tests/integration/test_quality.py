"""Fax qualities (mailgw.documents.quality): the names in three languages, a mail's line over the
account's, and the ack's words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mailgw.dispatch.drivers.base import CallRequest
from mailgw.dispatch.drivers.simulator import CONNECT, cancelled, outcome, page_seconds
from mailgw.documents import quality
from mailgw.notify.messages import quality_words
from mailgw.notify.words import words
from tests.integration.test_cli import mailgw


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


# -- the drivers get it ---------------------------------------------------------------------

def _fax(quality: str, number: str = "+33170709901") -> CallRequest:
    return CallRequest(1, 1, "fax", number, "k", pages_total=4, quality=quality)


def test_the_simulator_takes_longer_for_more_lines() -> None:
    normal, high, best = (outcome(_fax(q)) for q in quality.NAMES)
    assert normal.duration < high.duration < best.duration
    assert best.duration - CONNECT == 2 * (high.duration - CONNECT) == 4 * (
        normal.duration - CONNECT)
    assert normal.pages_sent == high.pages_sent == best.pages_sent == 4  # same pages
    dropped = outcome(_fax("best", "+33170709992"))  # the line drops after page 1
    assert dropped.pages_sent == 1 and dropped.duration == CONNECT + 1.5 * page_seconds("best")


def test_a_cancel_counts_the_pages_at_the_quality_speed() -> None:
    best = outcome(_fax("best"))
    # 60 s a page at best, after 15 s connecting: page 1 is confirmed at 75 s, page 2 at 135 s
    assert [cancelled(best, t, page_seconds("best")).pages_sent
            for t in (70, 80, 76 + 60, 300)] == [0, 1, 2, 4]


# -- the account's quality, from the CLI (migration 0012 on a fresh store) ------------------

def test_account_add_set_and_list_the_quality(tmp_path: Path) -> None:
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n', encoding="utf-8")
    conf = ("--config", str(cfg))
    r = mailgw(*conf, "account", "add", "a@example.com", "--password-stdin", "--quality",
               "normal", stdin="Pw-12345678\n")
    assert r.returncode == 0 and "quality normal" in r.stdout, r.stderr
    r = mailgw(*conf, "account", "add", "b@example.com", "--password-stdin", stdin="Pw-123456\n")
    assert r.returncode == 0 and "quality high" in r.stdout, r.stderr
    r = mailgw(*conf, "account", "set", "b@example.com", "--quality", "best")
    assert r.returncode == 0 and "quality best" in r.stdout, r.stderr
    assert mailgw(*conf, "account", "set", "b@example.com", "--quality", "ultra"
                  ).returncode == 2  # argparse: not one of the choices
    listed = mailgw(*conf, "account", "list")
    assert "a@example.com" in listed.stdout and "quality=normal" in listed.stdout
    assert "quality=best" in listed.stdout
    as_json = {a["email"]: a["quality"] for a in json.loads(
        mailgw(*conf, "account", "list", "--json").stdout)}
    assert as_json == {"a@example.com": "normal", "b@example.com": "best"}


# -- the rendering at intake: same pages, more lines ----------------------------------------

def test_a_picture_renders_to_the_same_pages_at_every_quality() -> None:
    """Rendered in the sandbox as intake does (mailgw.intake.facts.SandboxChecks): the page count
    is the same at every quality; the fax pages sent have the quality's scan lines."""
    from pypdf import PdfReader

    from mailgw.documents.checks import check_picture
    from mailgw.documents.sandbox import Limits
    from mailgw.intake.facts import SandboxChecks
    from tests.render_samples import picture

    png = picture(Image.new("L", (1200, 1700), 255), "PNG")
    heights = {}
    for name in quality.NAMES:
        check = SandboxChecks(Limits()).picture(png, name)
        assert check.usable and check.pages == 1 and check.document, name
        image = next(iter(PdfReader(io.BytesIO(check.document)).pages[0]["/Resources"]
                          ["/XObject"].values())).get_object()
        assert image["/Width"] == 1728
        heights[name] = image["/Height"]
    assert heights["normal"] * 2 == pytest.approx(heights["high"], abs=2)
    assert heights["high"] * 2 == pytest.approx(heights["best"], abs=2)
    assert check_picture(png, Limits()).pages == 1  # the default: high
