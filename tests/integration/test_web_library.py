"""The web space's Contacts and Library pages over the real ASGI app of a running daemon:
groups made, imported (`;` in Windows-1252, `,` in UTF-16 with its BOM) with MediasFlow's
counts, edited and deleted; voice messages uploaded (WAV, MP3) through intake, played from
the account's own route and deleted; another account's group or sound is not found; CSRF
refused on every form."""

from __future__ import annotations

import codecs
import re

import pytest
from sqlalchemy import select

from mailgw.accounts import groups, voice
from mailgw.documents.samples import make_wav
from mailgw.store.models import Account, ContactGroup, VoiceMessage
from tests.conftest import SENDER
from tests.integration.test_web_security import BOB, ready, web
from tests.sounds import encode
from tests.webspace import csrf_of

__all__ = ["web"]  # the fixture, used by name


def _counts(html: str) -> tuple[int, int, int]:
    found = [re.search(rf'id="n-{k}">(\d+)<', html) for k in ("added", "duplicates", "invalid")]
    assert all(found), "no import counts on the page"
    return tuple(int(m.group(1)) for m in found if m)  # type: ignore[return-value]


def _after(client, posted, name: str):  # type: ignore[no-untyped-def]
    """A form that redirects to the group's page (POST, then GET): that page, with the
    counts; and a reload of it shows them no more."""
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == f"/contacts/{name}#report"
    page = client.get(posted.headers["location"])
    assert page.status_code == 200 and 'id="report"' in page.text
    assert 'id="report"' not in client.get(f"/contacts/{name}").text
    return page


def _members(app, email: str, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return [n for n, _c in groups.members(s, email, name)]


def _bobs_group_and_sound(app) -> None:  # type: ignore[no-untyped-def]
    with app.store.tx() as s:
        groups.add_numbers(s, BOB, "bobs", ["0170709901"])
        bob = s.scalar(select(Account).where(Account.email == BOB))
        assert bob is not None
        voice.store_message(s, bob.id, "bob-promo", make_wav(1.0), 1.0, "bob.wav")


def test_groups_are_made_imported_edited_and_deleted(web) -> None:
    app, sink = web
    client = ready(app, sink)
    page = client.get("/contacts")
    assert page.status_code == 200 and '<label for="import-file">' in page.text
    csrf = csrf_of(page.text)
    made = client.post("/contacts", data={"csrf": csrf, "name": "@clients",
                                          "numbers": "01 70 70 99 01\n0170709901; 12\n"})
    assert _counts(_after(client, made, "clients").text) == (1, 1, 1)
    assert _members(app, SENDER, "clients") == ["+33170709901"]
    again = client.post("/contacts", data={"csrf": csrf, "name": "clients", "numbers": ""})
    assert again.status_code == 409
    assert client.post("/contacts", data={"csrf": csrf, "name": "a b"}).status_code == 400

    # a French Excel's "CSV (;)": Windows-1252, a header, a duplicate and a bad number
    cp1252 = "Société;Fax\nDupont & Fils;01 70 70 99 02\nÉcole;0170709901\n" \
             "Bis;01 70 70 99 02\nNul;12\n"
    imported = client.post("/contacts/import", data={"csrf": csrf, "name": "clients"},
                           files={"file": ("clients.csv", cp1252.encode("cp1252"),
                                           "text/csv")})
    shown = _after(client, imported, "clients").text
    assert _counts(shown) == (1, 2, 1)  # 0170709901 was there; 02 twice
    assert "Société" in shown and "Dupont &amp; Fils" in shown  # decoded
    assert _members(app, SENDER, "clients") == ["+33170709901", "+33170709902"]
    # Excel's "Unicode text": UTF-16 with its BOM, here with ','
    utf16 = codecs.BOM_UTF16_LE + "Nom,Fax\nИванов,0170709903\nX,abc\n".encode("utf-16-le")
    replaced = client.post("/contacts/import", data={"csrf": csrf, "name": "clients",
                                                     "replace": "yes"},
                           files={"file": ("l.csv", utf16, "text/csv")})
    assert _counts(_after(client, replaced, "clients").text) == (1, 0, 1)
    assert _members(app, SENDER, "clients") == ["+33170709903"]
    assert "Иванов" in client.get("/contacts/clients").text  # the list's other columns
    edited = client.post("/contacts/clients/edit", data={"csrf": csrf,
                                                         "numbers": "0170709904,0170709905"})
    assert _counts(_after(client, edited, "clients").text) == (2, 0, 0)
    assert _members(app, SENDER, "clients") == ["+33170709904", "+33170709905"]
    unreadable = client.post("/contacts/import", data={"csrf": csrf, "name": "other"},
                             files={"file": ("l.csv", b"Nom;Ville\nA;B\n", "text/csv")})
    assert unreadable.status_code == 400 and 'role="alert"' in unreadable.text
    listed = client.get("/contacts").text
    assert 'data-group="clients"' in listed and "@clients" in listed
    gone = client.post("/contacts/clients/delete", data={"csrf": csrf})
    assert gone.status_code == 303
    assert client.get("/contacts/clients").status_code == 404


def test_sounds_are_uploaded_played_and_deleted(web) -> None:
    app, sink = web
    client = ready(app, sink)
    page = client.get("/library")
    assert page.status_code == 200 and '<label for="sound-file">' in page.text
    csrf = csrf_of(page.text)
    up = client.post("/library", data={"csrf": csrf, "ref": "Promo-1"},
                     files={"sound": ("promo.wav", make_wav(2.0), "audio/wav")})
    assert up.status_code == 303 and up.headers["location"] == "/library?stored=promo-1"
    shown = client.get(up.headers["location"]).text
    assert "Message promo-1 stored" in shown
    assert '<audio controls preload="none" src="/library/promo-1/sound.wav"' in shown
    assert ":0170709901:promo-1" in shown  # the ref to put in the Subject
    sound = client.get("/library/promo-1/sound.wav")
    assert sound.status_code == 200 and sound.headers["content-type"] == "audio/wav"
    assert sound.content[:4] == b"RIFF" and b"WAVE" in sound.content[:12]
    assert "media-src 'self'" in sound.headers["content-security-policy"]
    mp3 = client.post("/library", data={"csrf": csrf, "ref": "jingle"},
                      files={"sound": ("jingle.mp3", encode("mp3", 1.5), "audio/mpeg")})
    assert mp3.status_code == 303
    with app.store.read() as s:  # stored converted, as a mail's sound is
        stored = {m.ref: m for m in s.scalars(select(VoiceMessage))}
        assert set(stored) == {"promo-1", "jingle"}
        assert stored["jingle"].audio[:4] == b"RIFF"
    broken = client.post("/library", data={"csrf": csrf, "ref": "bad"},
                         files={"sound": ("x.wav", b"RIFF0000WAVEnothing", "audio/wav")})
    assert broken.status_code == 422 and "[93]" in broken.text
    bad_ref = client.post("/library", data={"csrf": csrf, "ref": "a b"},
                          files={"sound": ("x.wav", make_wav(1.0), "audio/wav")})
    assert bad_ref.status_code == 422 and "[91]" in bad_ref.text
    none = client.post("/library", data={"csrf": csrf, "ref": "empty"})
    assert none.status_code == 422 and "[90]" in none.text
    assert client.post("/library/promo-1/delete", data={"csrf": csrf}).status_code == 303
    assert client.get("/library/promo-1/sound.wav").status_code == 404
    assert client.post("/library/promo-1/delete", data={"csrf": csrf}).status_code == 404


def test_an_upload_over_the_size_limit_is_refused_with_94(web,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    app, sink = web
    client = ready(app, sink)
    csrf = csrf_of(client.get("/library").text)
    monkeypatch.setattr(app.settings.smtp, "max_message_size", 20_000)
    big = client.post("/library", data={"csrf": csrf, "ref": "long"},
                      files={"sound": ("long.wav", make_wav(3.0), "audio/wav")})
    assert big.status_code == 413 and "[94]" in big.text
    with app.store.read() as s:
        assert s.scalars(select(VoiceMessage)).all() == []


def test_another_accounts_group_and_sound_are_not_found(web) -> None:
    app, sink = web
    _bobs_group_and_sound(app)
    client = ready(app, sink)
    csrf = csrf_of(client.get("/contacts").text)
    assert client.get("/contacts/bobs").status_code == 404
    assert client.post("/contacts/bobs/edit", data={"csrf": csrf, "numbers": "0170709909"}
                       ).status_code == 404
    assert client.post("/contacts/bobs/delete", data={"csrf": csrf}).status_code == 404
    assert client.get("/library/bob-promo/sound.wav").status_code == 404
    assert client.post("/library/bob-promo/delete", data={"csrf": csrf}).status_code == 404
    assert "bobs" not in client.get("/contacts").text
    assert "bob-promo" not in client.get("/library").text
    assert _members(app, BOB, "bobs") == ["+33170709901"]
    with app.store.read() as s:
        assert [m.ref for m in s.scalars(select(VoiceMessage))] == ["bob-promo"]


@pytest.mark.parametrize("path,fields,upload", [
    ("/contacts", {"name": "evil", "numbers": "0170709901"}, None),
    ("/contacts/import", {"name": "evil"}, ("file", "l.csv", b"Fax\n0170709901\n")),
    ("/contacts/mine/edit", {"numbers": "0170709909"}, None),
    ("/contacts/mine/delete", {}, None),
    ("/library", {"ref": "evil"}, ("sound", "x.wav", None)),
    ("/library/mine/delete", {}, None),
])
def test_every_contacts_and_library_form_refuses_a_forged_csrf(
        web, path: str, fields: dict[str, str], upload: tuple[str, str, bytes | None] | None
) -> None:
    app, sink = web
    with app.store.tx() as s:
        groups.add_numbers(s, SENDER, "mine", ["0170709901"])
        me = s.scalar(select(Account).where(Account.email == SENDER))
        assert me is not None
        voice.store_message(s, me.id, "mine", make_wav(1.0), 1.0, "mine.wav")
    client = ready(app, sink)
    files = None
    if upload is not None:
        field, name, data = upload
        files = {field: (name, data if data is not None else make_wav(1.0), "text/csv")}
    for csrf in (None, "forged" * 5):
        data = fields | ({"csrf": csrf} if csrf else {})
        assert client.post(path, data=data, files=files).status_code == 403, (path, csrf)
    with app.store.read() as s:
        assert sorted(g.name for g in s.scalars(select(ContactGroup))) == ["mine"]
        assert [m.ref for m in s.scalars(select(VoiceMessage))] == ["mine"]
    assert _members(app, SENDER, "mine") == ["+33170709901"]
