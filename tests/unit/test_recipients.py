"""Number rules: one number to E.164, and `,`/`;` lists sorted into numbers/invalid/groups."""

from __future__ import annotations

import time

import pytest

from mailgw.recipients import SIBLING_REGIONS, NumberList, normalize_number, parse_number_list


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        # France, the ways people write it
        ("0170709901", "FR", "+33170709901"),
        ("170709901", "FR", "+33170709901"),
        ("01 70 70 99 01", "FR", "+33170709901"),
        ("01.70.70.99.01", "FR", "+33170709901"),
        ("01-70-70-99-01", "FR", "+33170709901"),
        ("(01) 70 70 99 01", "FR", "+33170709901"),
        ("01\u00a070\u202f70 99 01", "FR", "+33170709901"),  # no-break spaces
        ("  0612345678  ", "FR", "+33612345678"),
        ("0800 12 34 56", "FR", "+33800123456"),
        ("fr", "FR", None),
        # international, + or 00
        ("+33170709901", "FR", "+33170709901"),
        ("+33 (0)1 70 70 99 01", "FR", "+33170709901"),
        ("0033 1 70 70 99 01", "FR", "+33170709901"),
        ("0044 20 7946 0958", "FR", "+442079460958"),
        ("+1 (212) 555-0100", "FR", "+12125550100"),
        ("0049 30 123456", "FR", "+4930123456"),
        ("+687 24 12 34", "FR", "+687241234"),
        ("+33170709901", "GB", "+33170709901"),  # international ignores the region
        # overseas France written nationally: tried in FR's sibling regions
        ("0262 12 34 56", "FR", "+262262123456"),  # Réunion (RE and YT agree)
        ("0692 12 34 56", "FR", "+262692123456"),  # Réunion mobile
        ("0590 27 12 34", "FR", "+590590271234"),  # Guadeloupe (GP, BL, MF agree)
        ("0696 20 12 34", "FR", "+596696201234"),  # Martinique mobile
        ("0594 12 34 56", "FR", "+594594123456"),  # Guyane
        # libphonenumber's FR metadata also accepts 0596 60… (Martinique) and 0269 60…
        # (Mayotte) as mainland numbers; valid in FR means FR wins, as the design says.
        ("0596 60 12 34", "FR", "+33596601234"),
        ("0269 60 12 34", "FR", "+33269601234"),
        ("0170709901", "RE", "+33170709901"),  # and back: mainland from Réunion
        # other regions' national numbers
        ("020 7946 0958", "GB", "+442079460958"),
        ("07400 123456", "GB", "+447400123456"),
        ("8 495 123-45-67", "RU", "+74951234567"),
        ("(212) 555-0100", "US", "+12125550100"),
        ("(416) 555-0100", "US", "+14165550100"),  # Canada resolves through +1
        ("020 7946 0958", "FR", None),  # a GB national number is not French
        ("0170709901", "GB", None),
        # letters are never keypad-mapped
        ("01 70 FAX 99 01", "FR", None),
        ("0800-FLOWERS", "FR", None),
        ("tel:+33170709901", "FR", None),
        ("+33170709901 ext. 12", "FR", None),
        ("０１７０７０９９０１", "FR", None),  # full-width digits
        # length: 6-17 digits after + or 00
        ("12345", "FR", None),
        ("0123", "FR", None),
        ("+33 1 70 70", "FR", None),
        ("123456789012345678", "FR", None),
        ("+123456789012345678", "FR", None),
        # shape
        ("", "FR", None),
        ("   ", "FR", None),
        ("+", "FR", None),
        ("()-.", "FR", None),
        ("01 70 +70 99 01", "FR", None),  # '+' only first
        ("++33170709901", "FR", None),
        ("0170709901", "ZZ", None),  # unknown region: no national reading
        ("+33170709901", "ZZ", "+33170709901"),
        ("0170709901", "fr", "+33170709901"),  # region case does not matter
    ],
)
def test_normalize_number(raw: str, region: str, e164: str | None) -> None:
    assert normalize_number(raw, region) == e164


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0170709901", NumberList(("+33170709901",), (), ())),
        (
            "0170709901,0612345678;+44 20 7946 0958",
            NumberList(("+33170709901", "+33612345678", "+442079460958"), (), ()),
        ),
        # duplicates, first occurrence wins, for each kind
        (
            "0170709901, +33 1 70 70 99 01; 0033170709901, 170709901",
            NumberList(("+33170709901",), (), (), duplicates=3),
        ),
        ("abc;def;abc", NumberList((), ("abc", "def"), ())),
        ("@clients,@clients", NumberList((), (), ("clients",))),
        # empty elements are ignored
        ("", NumberList((), (), ())),
        (" , ; ,, ", NumberList((), (), ())),
        ("0170709901,,0612345678", NumberList(("+33170709901", "+33612345678"), (), ())),
        # invalid elements are kept as written, trimmed
        (
            "0170709901, 01 70 FAX 99 01 ,12345",
            NumberList(("+33170709901",), ("01 70 FAX 99 01", "12345"), ()),
        ),
        # groups
        (
            "@clients,0170709901;@fournisseurs",
            NumberList(("+33170709901",), (), ("clients", "fournisseurs")),
        ),
        ("@ amis ", NumberList((), (), ("amis",))),
        ("@", NumberList((), ("@",), ())),
        # overseas, ordered with mainland
        ("0262 12 34 56,0170709901", NumberList(("+262262123456", "+33170709901"), (), ())),
    ],
)
def test_parse_number_list(text: str, expected: NumberList) -> None:
    assert parse_number_list(text, "FR") == expected


def test_parse_number_list_other_region() -> None:
    got = parse_number_list("020 7946 0958; 0170709901; +33170709901", "GB")
    assert got == NumberList(("+442079460958", "+33170709901"), ("0170709901",), ())


def test_french_siblings_are_listed() -> None:
    assert SIBLING_REGIONS["FR"] == ("RE", "GP", "MQ", "GF", "YT", "PM", "BL", "MF")
    assert "FR" in SIBLING_REGIONS["RE"] and "RE" not in SIBLING_REGIONS["RE"]
    assert "GB" not in SIBLING_REGIONS


def test_long_list_is_linear() -> None:
    text = ",".join(f"06{n:08d}" for n in range(5000)) + ",x" * 5000
    start = time.perf_counter()
    got = parse_number_list(text, "FR")
    assert time.perf_counter() - start < 10
    assert len(got.numbers) == 5000 and got.invalid == ("x",)
