"""The Contacts pages' follow-ups over the real ASGI app of a running daemon: an edit keeps
the list's columns of the numbers that stay; a form's counts reach the group's page through
a redirect (nothing the person typed in the URL), once, and only for the session that
posted."""

from __future__ import annotations

import re

from mailgw.accounts import groups
from mailgw.http.web import flash
from tests.conftest import SENDER
from tests.integration.test_web_security import BOB, ready, web
from tests.webspace import csrf_of

__all__ = ["web"]  # the fixture, used by name

CSV = "Nom;Fax;Ville\nDupont;0170709901;Lyon\nИванов;0170709902;Омск\nMartin;0170709903;Nice\n"


def _members(app, name: str) -> list[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return groups.members(s, SENDER, name)


def test_an_edit_keeps_the_columns_of_the_numbers_that_stay(web) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/contacts").text)
    imported = client.post("/contacts/import", data={"csrf": csrf, "name": "clients"},
                           files={"file": ("c.csv", CSV.encode(), "text/csv")})
    assert imported.status_code == 303
    assert [n for n, _c in _members(app, "clients")] == [
        "+33170709901", "+33170709902", "+33170709903"]
    # 01 goes, 03 and 02 stay (in the new order), 04 is typed in
    edited = client.post("/contacts/clients/edit",
                         data={"csrf": csrf, "numbers": "0170709903\n0170709902\n0170709904"})
    assert edited.status_code == 303
    assert _members(app, "clients") == [
        ("+33170709903", {"Nom": "Martin", "Ville": "Nice"}),
        ("+33170709902", {"Nom": "Иванов", "Ville": "Омск"}),
        ("+33170709904", {})]
    page = client.get("/contacts/clients").text
    assert "Иванов" in page and "Martin" in page and "Dupont" not in page


def test_the_counts_come_once_after_a_redirect_without_the_typed_text(web) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/contacts").text)
    typed = "<b>not-a-number</b>"
    made = client.post("/contacts", data={"csrf": csrf, "name": "mix",
                                          "numbers": f"0170709901\n{typed}\n0170709901"})
    assert made.status_code == 303 and made.headers["location"] == "/contacts/mix#report"
    assert "not-a-number" not in made.headers["location"]
    cookie = made.cookies.get(flash.COOKIE)
    assert cookie and "not-a-number" not in cookie  # encoded and signed, not plain
    set_cookie = made.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    shown = client.get("/contacts/mix")
    counts = {k: re.search(rf'id="n-{k}">(\d+)<', shown.text) for k in
              ("added", "duplicates", "invalid")}
    assert {k: int(m.group(1)) for k, m in counts.items() if m} == {
        "added": 1, "duplicates": 1, "invalid": 1}
    assert "&lt;b&gt;not-a-number&lt;/b&gt;" in shown.text and typed not in shown.text
    again = client.get("/contacts/mix")  # the reload: the group, the counts no more
    assert again.status_code == 200 and 'id="n-added"' not in again.text

    # the same cookie in another session (Bob's) is not his: ignored, and cleared
    bob = ready(app, sink, BOB)
    bob_csrf = csrf_of(bob.get("/contacts").text)
    assert bob.post("/contacts", data={"csrf": bob_csrf, "name": "mix",
                                       "numbers": "0170709909"}).status_code == 303
    bob.cookies.set(flash.COOKIE, cookie)
    page = bob.get("/contacts/mix")
    assert page.status_code == 200 and 'id="report"' not in page.text
    assert flash.COOKIE in page.headers.get("set-cookie", "")  # cleared


def test_a_flash_is_read_only_with_its_sessions_secret() -> None:
    value = flash.encode("secret-one", {"name": "x", "added": 1})
    assert flash.decode("secret-one", value) == {"name": "x", "added": 1}
    assert flash.decode("secret-two", value) is None
    payload, _, sig = value.partition(".")
    assert flash.decode("secret-one", payload + "A." + sig) is None
    assert flash.decode("secret-one", "garbage") is None
