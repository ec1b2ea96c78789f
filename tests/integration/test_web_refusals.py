"""Refused forms over the real ASGI app of a running daemon, in the account's language: an
operator's admin form says the accounts module's reason translated (fr, ru), not in English
after a translated prefix; the Settings' test number refusal shows its code (84)."""

from __future__ import annotations

import html

from sqlalchemy import update

from mailgw.store import Account
from tests.conftest import SENDER
from tests.integration.test_web_admin import ADMIN, account_id, operator, post, web
from tests.integration.test_web_security import BOB, ready
from tests.webspace import csrf_of

__all__ = ["web"]  # the fixture, used by name


def _lang(app, email: str, lang: str) -> None:  # type: ignore[no-untyped-def]
    with app.store.tx() as s:
        s.execute(update(Account).where(Account.email == email).values(lang=lang))


def _error(page: str) -> str:
    start = page.index('role="alert"')
    return html.unescape(page[page.index(">", start) + 1:page.index("</p>", start)])


def test_admin_refusals_are_said_in_french_and_russian(web) -> None:
    app, sink = web
    client = operator(app, sink)
    bob = account_id(app, BOB)
    _lang(app, ADMIN, "fr")
    where = f"/admin/accounts/{bob}"
    below = post(client, where, f"{where}/credits", credits="-100000")
    assert below.status_code == 400
    assert _error(below.text) == "Refusé : Les crédits ne peuvent pas être négatifs."
    made = post(client, "/admin/accounts", "/admin/accounts", email="new@example.com",
                password="S3cretNew", region="FR", lang="fr", tz="Mars/Olympus", credits="")
    assert made.status_code == 400
    assert _error(made.text) == (
        "Refusé : Fuseau horaire inconnu 'Mars/Olympus' (ex. Europe/Paris).")

    _lang(app, ADMIN, "ru")
    me = f"/admin/accounts/{account_id(app, ADMIN)}"
    own = post(client, me, f"{me}/status", disabled="yes")
    assert own.status_code == 400
    assert _error(own.text) == (
        "Отклонено: Оператор не может отключить собственную учётную запись.")
    window = post(client, where, f"{where}/limits", window="25:99-nope", retry="")
    assert window.status_code == 400
    assert _error(window.text).startswith("Отклонено: Окно отправки не распознано")


def test_the_test_number_refusal_shows_its_code(web) -> None:
    app, sink = web
    client = ready(app, sink)
    _lang(app, SENDER, "fr")
    token = csrf_of(client.get("/settings").text)
    refused = client.post("/settings/test-number", data={"csrf": token, "number": "12"})
    assert refused.status_code == 400
    assert _error(refused.text) == "[84] Numéro de fax non valide."
