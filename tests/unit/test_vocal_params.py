"""http.php's parameters as a Subject command: read back by the Subject parser, each value
stays in its own field (a `:` adds none, a comment never becomes the `when`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgw.codes import Code
from mailgw.intake import vocal_params
from mailgw.intake.vocal_params import VocalRequest
from mailgw.subject_parser import Command, parse_subject

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FULL = {"email": "a@example.com", "pass": "FGB45L", "numero": "0170709901", "ref": "32"}


def parsed(**over: str) -> tuple[VocalRequest, Command]:
    got = vocal_params.read({**FULL, **over})
    assert isinstance(got, VocalRequest)
    return got, parse_subject(got.subject, region="FR", tz="Europe/Paris", now=NOW)


@pytest.mark.parametrize("empty, code", [("email", Code.NO_SENDER), ("pass", Code.NO_PASSWORD),
                                         ("numero", Code.NO_NUMBER), ("ref", Code.NO_REF)])
def test_required_values_are_checked_in_123_vocal_order(empty: str, code: Code) -> None:
    params = {**FULL, empty: ""}
    assert vocal_params.read(params) == code
    later = {k: "" for k in list(FULL)[list(FULL).index(empty):]}
    assert vocal_params.read({**FULL, **later}) == code  # the first empty one is told


def test_values_as_php_request_gives_them() -> None:
    got = vocal_params.values({"numero": " 01\r\n70 ", "other": "x", "ref": "1"},
                              {"ref": "2"})
    assert got == {"numero": "01  70", "ref": "2"}


def test_fields_land_where_123_vocal_puts_them() -> None:
    got, cmd = parsed(com="relance: mars", diff="153012092026", transfert="0170709902",
                      emetteur="0170709903", depot="1")
    assert cmd.password == "FGB45L" and cmd.numbers == ("+33170709901",)
    assert (cmd.ref, cmd.comment) == ("32", "relance: mars")
    assert cmd.when_local == datetime(2026, 9, 12, 15, 30)
    assert got.options == {"transfert": "0170709902", "emetteur": "0170709903", "depot": "1"}
    assert got.email == "a@example.com" and "FGB45L" not in repr(got)


def test_a_colon_adds_no_field() -> None:
    _, cmd = parsed(**{"pass": "FGB45L:0612345678"}, numero="0170:709901", ref="a:b")
    assert cmd.password != "FGB45L" and cmd.numbers == ()
    assert cmd.invalid_numbers and cmd.ref not in ("a", None)


@pytest.mark.parametrize("diff, error, cancel", [
    ("demain", True, False), ("12h", True, False), ("xs", True, True),
    ("153012092014", True, False), ("153012092026s", False, True), ("", False, False)])
def test_diff_is_a_date_or_refused(diff: str, error: bool, cancel: bool) -> None:
    _, cmd = parsed(diff=diff)
    assert (cmd.when_error, cmd.cancel) == (error, cancel)


@pytest.mark.parametrize("com", ["12345678", "a:12345678", "12345678:", "153012092026s"])
def test_a_comment_is_never_the_when(com: str) -> None:
    _, cmd = parsed(com=com)
    assert not cmd.when_error and cmd.when_local is None
    assert (cmd.comment or "").startswith(com.rstrip(":"))


def test_forms_in_utf_8_or_windows_1252() -> None:
    assert vocal_params.decode_pairs(b"com=%C3%A9t%C3%A9&numero=01+70") == {"com": "été",
                                                                            "numero": "01 70"}
    assert vocal_params.decode_pairs(b"com=%E9t%E9+%80&ref=1&ref=2") == {"com": "été €",
                                                                         "ref": "2"}
    assert vocal_params.decode_pairs(b"a&b=") == {"a": "", "b": ""}
