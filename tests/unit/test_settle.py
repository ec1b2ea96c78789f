"""The pure parts around the decision: address routing (mailgw.intake.routes) and the codes
the commit settles from what it read (83, 95/96: mailgw.intake.settle); no store."""

from __future__ import annotations

import pytest

from mailgw.codes import CODES, Code, Detail, sentence, smtp_reply
from mailgw.intake import settle
from mailgw.intake.routes import address_numbers, channel_of, looks_like_number
from mailgw.intake.verdict import Found, Policy, Refuse, Scheduled
from mailgw.ops.config import Settings

POLICY = Policy.of(Settings())  # fax@localhost, voice@localhost, domain localhost


@pytest.mark.parametrize(("rcpt", "channel"), [
    ("fax@localhost", "fax"), (" FAX@Localhost ", "fax"), ("voice@localhost", "voice"),
    ("+33170709901@localhost", "fax"), ("01.70.70.99.01@localhost", "fax"),
    ("0170-709901@localhost", "fax"), ("12345@localhost", None),
    ("123456789012345678@localhost", None), ("+33170709901@elsewhere.org", None),
    ("sales@localhost", None), ("localhost", None), ("", None)])
def test_channel_of(rcpt: str, channel: str | None) -> None:
    assert channel_of(rcpt, POLICY) == channel


def test_looks_like_number() -> None:
    assert looks_like_number("123456") and looks_like_number("+1.234-567")
    assert not looks_like_number("12345") and not looks_like_number("12a456")


def test_address_numbers() -> None:
    good, bad = address_numbers(
        ["fax@localhost", "voice@localhost", "+33170709901@localhost",
         "0170709901@localhost", "0170709902@localhost", "123456@localhost"], "FR", POLICY)
    assert good == ["+33170709901", "+33170709902"]  # the same number once
    assert bad == ["123456"]


def _action(**kw: object) -> settle.Action:
    args: dict[str, object] = dict(has_account=True, proven=True, code=Code.SENDING,
                                   cancel=False, store_ref=None, has_document=True,
                                   has_command=True)
    args.update(kw)
    return settle.action(**args)  # type: ignore[arg-type]


def test_what_the_commit_does() -> None:
    assert _action() == "job"
    assert _action(code=Code.DEFERRED) == "job"
    assert _action(code=Code.BAD_PASSWORD) == "none"
    assert _action(has_account=False) == "none"
    assert _action(has_command=False) == "none"
    assert _action(cancel=True, code=Code.CANCELLED) == "cancel"
    assert _action(cancel=True, code=Code.CANCELLED, proven=False) == "job"
    assert _action(cancel=True, code=Code.BAD_WHEN) == "none"
    assert _action(store_ref="promo") == "store"
    assert _action(store_ref="promo", has_document=False) == "job"
    assert _action(store_ref="promo", code=Code.NO_PASSWORD) == "none"


def test_cost() -> None:
    assert settle.units("fax", 3) == 3 and settle.units("fax", None) == 1
    assert settle.units("voice", 3) == 1
    assert settle.cost("fax", 4, 3) == 12 and settle.cost("voice", 4, None) == 4


def test_charge() -> None:
    assert settle.charge(None, 5) == settle.Charge(None, None)
    assert settle.charge(5, 5) == settle.Charge(None, 0, 5)
    assert settle.charge(9, 5) == settle.Charge(None, 4, 5)
    short = settle.charge(2, 5)
    assert short.left == 2 and short.debit == 0
    assert short.refusal is not None and short.refusal.code == Code.NO_CREDIT
    assert short.refusal.explain("en") == "5 credits needed, 2 left"


def test_cancel() -> None:
    jobs = [Scheduled(1, "INV-7", frozenset({"+33170709901"})),
            Scheduled(2, None, frozenset({"+33170709901", "+33170709902"}))]
    assert settle.cancel_matches(jobs, ["+33170709901"], None) == [1]
    assert settle.cancel_matches(jobs, [], "INV-7") == [1]
    assert settle.cancel_matches(jobs, [], None) == []
    assert settle.cancel_code([2]) == Code.CANCELLED
    assert settle.cancel_code([]) == Code.NOTHING_TO_CANCEL


@pytest.mark.parametrize("code", [c for c in Code if not CODES[c].accepted])
def test_a_refusal_tells_its_code_sentence(code: Code) -> None:
    refusal = Refuse(code, None, Found())
    for lang in ("fr", "en", "ru"):
        assert refusal.sentence(lang) == sentence(code, lang)
    assert refusal.explain("en") == ""
    assert Refuse(code, Detail.of("no_pages", name="a.pdf"), Found()).explain("en") == \
        "a.pdf has no page"


@pytest.mark.parametrize("code", [c for c in Code if CODES[c].accepted])
def test_an_accepting_code_is_no_refusal(code: Code) -> None:
    with pytest.raises(ValueError):
        Refuse(code, None, Found())


def test_a_preview_is_not_told_sending_now_in_any_language() -> None:
    for lang in ("fr", "en", "ru"):
        told = sentence(Code.SENDING, lang, preview=True)
        assert told != sentence(Code.SENDING, lang)
        assert smtp_reply(Code.SENDING, lang, preview=True, utf8=True).endswith(told)
    assert sentence(Code.SENDING, "en", preview=True) == "Accepted for a preview, nothing is sent"
