"""The web space's pure parts: the Sent filters, the language of a page, where sign-in may
send the browser back, and the three word tables."""

from __future__ import annotations

from datetime import UTC, datetime

from mailgw.http.web import filters, i18n
from mailgw.http.web.pages import CSP, HEADERS, local_path


def test_filters_read_what_they_can_and_name_the_rest() -> None:
    form = filters.parse({"state": "partial", "channel": "fax", "from": "2026-01-02",
                          "to": "2026-01-31", "ref": "INV", "number": "01 70 70 99 01",
                          "text": "relance", "page": "3"}, "Europe/Paris", "FR")
    q = form.query
    assert (q.outcome, q.channel, q.ref, q.text) == ("partial", "fax", "INV", "relance")
    assert q.number == "+33170709901" and q.exact_number
    assert q.since == datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    assert q.until == datetime(2026, 1, 31, 23, 0, tzinfo=UTC)  # the whole last day
    assert form.page == 3 and form.ignored == []
    assert "page=4" in form.link(page=4) and "state=partial" in form.link(page=4)
    bad = filters.parse({"state": "lost", "channel": "pigeon", "from": "yesterday",
                         "number": "99 01", "page": "-7"}, "Europe/Paris", "FR")
    assert bad.ignored == ["state", "channel", "from"]
    assert bad.query.outcome is None and bad.query.since is None
    assert (bad.query.number, bad.query.exact_number) == ("9901", False)
    assert bad.page == 1
    assert filters.parse({"number": "abc"}, "UTC", "FR").ignored == ["number"]


def test_the_language_comes_from_the_browser_when_nobody_is_signed_in() -> None:
    assert i18n.from_header("ru-RU,ru;q=0.9,en;q=0.8") == "ru"
    assert i18n.from_header("de-DE, fr;q=0.4, en;q=0.3") == "fr"
    assert i18n.from_header("de") == "en"
    assert i18n.from_header(None) == "en"
    assert i18n.from_header("en;q=0.2, fr;q=0.9") == "fr"


def test_every_language_has_every_word() -> None:
    keys = set(i18n.WORDS["en"])
    for lang in ("fr", "ru"):
        assert set(i18n.WORDS[lang]) == keys
        assert all(i18n.WORDS[lang][k].strip() for k in keys)
    assert i18n.words("de") is i18n.WORDS["en"]


def test_sign_in_sends_back_only_to_a_path_of_this_site() -> None:
    assert local_path("/jobs/12") == "/jobs/12"
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "",
                      None, "jobs/12"):
        assert local_path(elsewhere) == "/sent"


def test_the_headers_forbid_framing_and_inline_script() -> None:
    assert "frame-ancestors 'none'" in CSP and "default-src 'none'" in CSP
    assert "unsafe-inline" not in CSP
    assert HEADERS["X-Content-Type-Options"] == "nosniff"
    assert HEADERS["Referrer-Policy"] == "same-origin"
