"""The fast path for digit strings gives phonenumbers' own answer (mailgw.e164)."""

from __future__ import annotations

import random

import pytest

from mailgw.e164 import slow_e164, valid_e164
from mailgw.recipients import normalize_number

REGIONS = ("FR", "RE", "GP", "US", "CA", "GB", "IM", "DE", "IT", "ES", "BE", "CH", "RU", "KZ",
           "BR", "AR", "MX", "CN", "IN", "JP", "AU", "NL", "SE", "PL", "IL", "ZA", "NG", "SG",
           "HK", "AE", "TR", "VA", "SM", "MC", "LU", "IE", "PT", "AT")


def sample(region: str, rng: random.Random, n: int) -> list[str]:
    """National strings of this region's shapes (leading 0, its country code, 00, 011…) and
    random digits, 6 to 17 of them."""
    out = []
    for _ in range(n):
        length = rng.randint(6, 17)
        head = rng.choice(["", "0", "00", "011", "8", "810", "1", "33", "44", "39", "7", "55",
                           "54", "52", "9", "06", "07", "01", "0800"])
        tail = "".join(rng.choice("0123456789") for _ in range(max(length - len(head), 1)))
        out.append(head + tail)
    return out


@pytest.mark.parametrize("region", REGIONS)
def test_national_strings_read_as_phonenumbers_reads_them(region: str) -> None:
    rng = random.Random(region)
    numbers = sample(region, rng, 1500)
    got = [valid_e164(n, region) for n in numbers]
    assert got == [slow_e164(n, region) for n in numbers]
    assert any(got), "the sample has valid numbers too"


def test_international_strings_read_as_phonenumbers_reads_them() -> None:
    rng = random.Random(20)
    numbers = ["+" + n for region in REGIONS[:12] for n in sample(region, rng, 800)]
    got = [valid_e164(n, None) for n in numbers]
    assert got == [slow_e164(n, None) for n in numbers]
    assert sum(1 for g in got if g) > 100


@pytest.mark.parametrize(("raw", "region", "e164"), [
    ("01 70 70 99 01", "FR", "+33170709901"),
    ("+33 1 70 70 99 01", "FR", "+33170709901"),
    ("0033170709901", "FR", "+33170709901"),
    ("0262 12 34 56", "FR", "+262262123456"),  # Réunion, through the shared plan
    ("(212) 555-0100", "US", "+12125550100"),
    ("01 70", "FR", None),  # too short
    ("+1 650 253 0000", "US", "+16502530000"),  # NANP: several regions, phonenumbers decides
    ("+44 7400 123456", "GB", "+447400123456"),
    ("+800 1234 5678", "FR", "+80012345678"),  # non-geographic
])
def test_written_numbers(raw: str, region: str, e164: str | None) -> None:
    assert normalize_number(raw, region) == e164
