"""The admin pages' refusals in the operator's language: each real AccountError the account
forms can raise (raised here by the accounts module itself, before any store is touched) is
of a known kind, said in fr, en and ru; an unknown one stays in English."""

from __future__ import annotations

from typing import Any

import pytest

from mailgw.accounts import accounts
from mailgw.accounts.accounts import AccountError
from mailgw.http.web import refusals

FINE = {"region": "FR", "lang": "en", "tz": "Europe/Paris", "credits": None}


def _raised(call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(AccountError) as caught:
        call(*args, **kw)
    return str(caught.value)


def _add(email: str = "a@example.com", password: str = "S3cret", **kw: Any) -> str:
    # every check before the store's is made without it (None would fail if reached)
    return _raised(accounts.add_account, None, email, password, **(FINE | kw))


def real_messages() -> list[str]:
    return [_raised(accounts.check_password_rules, bad)
            for bad in ("", " pad", "a:b", "x" * 129, "Re")] + [
        _add(email="not an address"), _add(region="XX"), _add(lang="de"),
        _add(tz="Mars/Olympus"), _add(credits=-1),
        _raised(accounts._new_credits, 5, "lots"), _raised(accounts._new_credits, 5, "-9")]


@pytest.mark.parametrize("message", real_messages())
def test_every_real_refusal_is_of_a_known_kind(message: str) -> None:
    assert refusals.known(message), message
    for lang in ("fr", "ru"):
        assert refusals.explain(message, lang) != message


def test_fr_and_ru_with_the_value_named() -> None:
    tz = _add(tz="Mars/Olympus")
    assert refusals.explain(tz, "fr") == "Fuseau horaire inconnu 'Mars/Olympus' (ex. Europe/Paris)."
    assert refusals.explain(tz, "ru") == (
        "Неизвестный часовой пояс 'Mars/Olympus' (например Europe/Moscow).")
    assert refusals.explain(tz, "en") == "Unknown time zone 'Mars/Olympus' (e.g. Europe/Paris)."
    credits = _raised(accounts._new_credits, 5, "lots")
    assert refusals.explain(credits, "fr") == (
        "Crédits : un nombre, +N ou -N, ou « unlimited » (pas 'lots').")
    taken = "bob@example.com is already an account or a sender address"
    assert refusals.explain(taken, "ru").startswith("bob@example.com уже")
    assert refusals.explain("window: 25:00 is not a time", "fr").startswith(
        "La plage d'envoi n'est pas comprise")
    assert refusals.explain("an operator cannot disable their own account", "ru") == (
        "Оператор не может отключить собственную учётную запись.")


def test_an_unknown_refusal_stays_in_english() -> None:
    assert not refusals.known("something new went wrong")
    assert refusals.explain("something new went wrong", "fr") == "something new went wrong"
