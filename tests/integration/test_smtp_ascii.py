"""The SMTP reply's language without SMTPUTF8: the sentence and the detail transliterated to
ASCII in the account's language (never English instead, never stripped to punctuation); with
SMTPUTF8, the exact text. Over the real listener, for fr, en and ru accounts."""

from __future__ import annotations

import smtplib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgw.codes import CODES, DETAILS, sentence, smtp_reply
from mailgw.documents.samples import make_pdf
from mailgw.translit import to_ascii
from mailgw.vocab import LANGS
from tests.conftest import PASSWORD, fax_message
from tests.integration.test_end_to_end import crlf


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'ascii.db'}"


ACCOUNTS = {  # lang: (sender, region, zone, an unknown group in that language)
    "fr": ("francoise@example.fr", "FR", "Europe/Paris", "clients-été"),
    "en": ("ewa@example.pl", "GB", "Europe/London", "Łódź-office"),
    "ru": ("ivan@example.ru", "RU", "Europe/Moscow", "клиенты"),
}
REPLIES = {  # lang: (without SMTPUTF8, with it), after the "550 " of the reply
    "fr": ("5.1.3 [86] Groupe de contacts vide ou inconnu (groupe vide ou inconnu : "
           "@clients-ete)",
           "5.1.3 [86] Groupe de contacts vide ou inconnu (groupe vide ou inconnu : "
           "@clients-été)"),
    "en": ("5.1.3 [86] Contact group empty or unknown (group empty or unknown: @Lodz-office)",
           "5.1.3 [86] Contact group empty or unknown (group empty or unknown: @Łódź-office)"),
    "ru": ("5.1.3 [86] Gruppa kontaktov pusta ili ne naidena (gruppa pusta ili ne naidena: "
           "@klienty)",
           "5.1.3 [86] Группа контактов пуста или не найдена (группа пуста или не найдена: "
           "@клиенты)"),
}


def data_reply(port: int, msg, *, utf8: bool) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """Send one mail, with or without SMTPUTF8 on MAIL FROM; the DATA reply as raw bytes."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.com")
        assert client.has_extn("smtputf8")
        code, _ = client.mail(str(msg["From"]), ["SMTPUTF8"] if utf8 else [])
        assert code == 250
        assert client.rcpt(str(msg["To"]))[0] == 250
        code, text = client.data(crlf(msg.as_bytes()))
    return code, text


@pytest.mark.parametrize("lang", LANGS)
def test_refusal_in_the_accounts_language_with_and_without_smtputf8(make_app, sink,
                                                                     lang: str) -> None:
    sender, region, tz, group = ACCOUNTS[lang]
    app = make_app()
    app.add_account(sender, PASSWORD, lang=lang, region=region, tz=tz)
    pdf = make_pdf([["x"]])
    plain, exact = REPLIES[lang]
    code, text = data_reply(app.port, fax_message(f"{PASSWORD}:@{group}", pdf, sender=sender),
                            utf8=False)
    assert (code, text) == (550, plain.encode("ascii"))
    code, text = data_reply(app.port, fax_message(f"{PASSWORD}:@{group}", pdf, sender=sender),
                            utf8=True)
    assert (code, text.decode("utf-8")) == (550, exact)


def test_a_reply_replayed_to_a_client_without_smtputf8_is_ascii(make_app, sink) -> None:
    """The same mail again (same Message-ID) gets the first answer, stored in UTF-8: a
    client without SMTPUTF8 gets it transliterated."""
    sender, region, tz, group = ACCOUNTS["ru"]
    app = make_app()
    app.add_account(sender, PASSWORD, lang="ru", region=region, tz=tz)
    msg = fax_message(f"{PASSWORD}:@{group}", make_pdf([["x"]]), sender=sender,
                      message_id="<again@example.ru>")
    first = data_reply(app.port, msg, utf8=True)
    again = data_reply(app.port, msg, utf8=False)
    assert first == (550, REPLIES["ru"][1].encode())
    assert again == (550, REPLIES["ru"][0].encode())


@pytest.mark.parametrize("lang", LANGS)
def test_every_sentence_reads_in_ascii(lang: str) -> None:
    """Every code's sentence and every detail template: ASCII, in its own language (no
    English fallback), no letter lost to "?"."""
    for code in CODES:
        line = smtp_reply(code, lang)
        assert line.isascii() and "?" not in line, line
        assert line.endswith(to_ascii(sentence(code, lang))), line
        if lang != "en":
            assert sentence(code, "en") not in line, line
    for key, texts in DETAILS.items():
        folded = to_ascii(texts[lang])
        assert folded.isascii() and "?" not in folded, (key, folded)


@pytest.mark.parametrize("text, ascii_form", [
    ("Référence non valide", "Reference non valide"),
    ("« {ref} » l’œuvre – Straße, 5\u00a0€", '" {ref} " l\'oeuvre - Strasse, 5 EUR'),
    ("Неверный пароль или отправитель", "Nevernyi parol ili otpravitel"),
    ("ЖУК Жук объём Щука ЮЛЯ", "ZHUK Zhuk obieem Shchuka IULIA"),  # ICAO 9303
    ("Київ, Ґалаґан", "Kiiv, Galagan"),
    ("合同.pdf", "??.pdf"),  # another script: marked, not dropped
    ("a\u00adb\u200bc\u0301\r\nd", "abc  d"),  # soft hyphen, zero width, combining mark
])
def test_transliteration_table(text: str, ascii_form: str) -> None:
    assert to_ascii(text) == ascii_form


# The letters of Latin-1, Latin Extended-A (every European language) and the Cyrillic of
# Russian, Ukrainian, Belarusian, Serbian and Macedonian, with ASCII between them.
LETTERS = ("Lu", "Ll", "Lt", "Lm", "Lo")
EUROPEAN = (st.characters(min_codepoint=0xA0, max_codepoint=0x17F, categories=LETTERS)
            | st.characters(min_codepoint=0x400, max_codepoint=0x45F, categories=LETTERS)
            | st.characters(max_codepoint=0x7F))


@given(st.text())
def test_transliteration_is_always_one_ascii_line(text: str) -> None:
    out = to_ascii(text)
    assert out.isascii() and all(32 <= ord(c) < 127 for c in out)
    if text.isascii() and text.isprintable():
        assert out == text  # plain ASCII stays as it is


@given(st.text(EUROPEAN))
def test_no_european_letter_becomes_a_question_mark(text: str) -> None:
    assert to_ascii(text).count("?") == text.count("?")
