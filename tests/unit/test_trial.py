"""Preview and test before a campaign, the pure parts: the body's `preview:` / `test:`
lines (mailgw.intake.trial), the Subject's `preview` word (mailgw.subject_parser) and the
decision's plan (mailgw.intake.decide)."""

from __future__ import annotations

import dataclasses

import pytest

from mailgw.codes import Code, Detail, detail
from mailgw.intake import trial
from mailgw.intake.settle import action
from mailgw.intake.verdict import Accept, Refuse
from mailgw.subject_parser import decide as subject_code
from mailgw.subject_parser import parse_subject
from tests.unit.test_decide import A_PDF, ACCOUNT, NOW, mail, run

CSV = ("clients.csv", b"Nom;FAX\r\nDupont;0170709901\r\nMartin;0170709902\r\n",
       "text/csv")


@pytest.mark.parametrize(("body", "expected"), [
    ("preview: yes\n", "preview"), ("Aperçu : oui\n", "preview"),
    ("предпросмотр: да\n", "preview"), ("test: yes\n", "test"), ("essai: oui\n", "test"),
    ("тест: да\n", "test"), ("test: yes\npreview: yes\n", "preview"),
    ("preview: no\n", None), ("Hello,\n\npreview: yes is not asked here\n", None),
    ("Hello\n", None)])
def test_the_body_asks_for_a_preview_or_a_test(body: str, expected: str | None) -> None:
    assert trial.mode(body)[0] == expected


def test_a_value_neither_yes_nor_no_is_told() -> None:
    mode, problems = trial.mode("preview: maybe\n")
    assert mode is None and problems[0].key == "option_value"
    assert trial.mode("Hello\n", subject_preview=True)[0] == "preview"


@pytest.mark.parametrize("word", ["preview", " Preview ", "APERÇU", "предпросмотр"])
def test_the_subject_word_preview_needs_no_number(word: str) -> None:
    cmd = parse_subject(f"FGB45L:{word}:REF", region="FR", tz="Europe/Paris", now=NOW)
    assert cmd.preview and cmd.numbers == () and cmd.invalid_numbers == ()
    assert cmd.ref == "REF"
    assert subject_code(cmd, password_ok=True) == Code.SENDING
    assert subject_code(cmd, password_ok=False) == Code.BAD_PASSWORD


def test_other_subjects_are_read_as_before() -> None:
    cmd = parse_subject("FGB45L:previews:REF", region="FR", tz="Europe/Paris", now=NOW)
    assert not cmd.preview and cmd.invalid_numbers == ("previews",)
    assert subject_code(cmd, password_ok=True) == Code.BAD_NUMBER
    cmd = parse_subject("FGB45L::REF", region="FR", tz="Europe/Paris", now=NOW)
    assert not cmd.preview and subject_code(cmd, password_ok=True) == Code.NO_NUMBER


def test_a_preview_is_planned_for_the_first_recipient_only() -> None:
    v = run(mail("FGB45L::R", attach=(*A_PDF, CSV), body="preview: yes\ncover: yes\n"))
    assert isinstance(v, Accept) and v.plan.action == "preview" and v.code == Code.SENDING
    assert v.found.numbers == ["+33170709901"]
    assert dict(v.found.recipients[0].columns)["Nom"] == "Dupont"
    assert Detail.of("preview_only") in v.plan.notes
    assert v.plan.options == {"quality": "high", "cover": "yes"}


def test_a_preview_in_the_subject_or_deferred_dials_nothing() -> None:
    v = run(mail("FGB45L:preview:R", attach=A_PDF))
    assert isinstance(v, Accept) and v.plan.action == "preview" and v.found.numbers == []
    v = run(mail("FGB45L:0170709901:R:::153012092026", attach=A_PDF, body="preview: yes\n"))
    assert isinstance(v, Accept) and v.plan.action == "preview" and v.code == Code.SENDING


def test_a_preview_is_checked_as_usual() -> None:
    assert run(mail("FGB45L:preview:R")).code == Code.NO_DOCUMENT
    assert run(mail("wrong:preview:R", attach=A_PDF)).code == Code.BAD_PASSWORD
    voice = run(mail("FGB45L:preview:R", to="voice@localhost"), to="voice@localhost")
    assert voice.code == Code.NO_NUMBER  # a fax feature: no call is placed for it


def test_test_goes_to_the_test_number_with_the_first_rows_columns() -> None:
    account = dataclasses.replace(ACCOUNT, test_number="+33170709977")
    v = run(mail("FGB45L:0170709903::", attach=(*A_PDF, CSV), body="test: yes\n"),
            account=account)
    assert isinstance(v, Accept) and v.plan.action == "send"
    assert v.found.numbers == ["+33170709977"] and not v.found.from_list
    assert dict(v.found.recipients[0].columns)["Nom"] == "Dupont"
    assert Detail.of("test_only", number="+33170709977") in v.plan.notes


def test_test_without_a_test_number_is_89_naming_the_command() -> None:
    v = run(mail("FGB45L:0170709901", attach=A_PDF, body="essai: oui\n"))
    assert isinstance(v, Refuse) and v.code == Code.NO_NUMBER
    for lang in ("fr", "en", "ru"):
        assert "account set --test-number" in v.explain(lang)


def test_the_commit_writes_no_job_for_a_preview() -> None:
    kw = {"has_account": True, "proven": True, "code": 80, "cancel": False,
          "store_ref": None, "has_document": True, "has_command": True}
    assert action(**kw) == "job"
    assert action(**kw, preview=True) == "none"


def test_every_new_sentence_exists_in_three_languages() -> None:
    for key in ("preview_only", "preview_failed", "test_only", "test_number_missing"):
        texts = {lang: detail(key, lang, error="x", number="+1") for lang in ("fr", "en", "ru")}
        assert len(set(texts.values())) == 3, texts
