"""docs/simulator.md's outcome table is what the simulator driver does, attempt by attempt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailgw.dispatch.drivers.base import DELIVERED, CallRequest
from mailgw.dispatch.drivers.simulator import outcome

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (\d\d(?:–\d\d)?) \| ([^|]+) \| ([^|]+) \|", line)
        if m:
            rows.append((m.group(1), m.group(2).strip(), m.group(3).strip()))
    return rows


def _attempts(channel: str, digits: str, count: int) -> list[tuple[str, bool]]:
    number = "+3317070" + ("99" if channel == "fax" else "98") + digits
    results = []
    first_page = 1
    for attempt in range(1, count + 1):
        req = CallRequest(delivery_id=1, attempt=attempt, channel=channel, number=number,
                          idempotency_key="k", pages_total=3, first_page=first_page,
                          sound_seconds=12.0)
        res = outcome(req)
        results.append((res.result, res.retryable))
        first_page += res.pages_sent
    return results


def test_the_table_has_every_case() -> None:
    covered: set[int] = set()
    for digits, _, _ in _rows():
        lo, _, hi = digits.partition("–")
        covered.update(range(int(lo), int(hi or lo) + 1))
    assert covered == set(range(100))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r[0])
@pytest.mark.parametrize("channel", ["fax", "voice"])
def test_each_row_matches_the_driver(row: tuple[str, str, str], channel: str) -> None:
    digits, fax, voice = row
    words = [w.strip() for w in (fax if channel == "fax" else voice).split(",")]
    repeats = words[-1].endswith("…")
    words[-1] = words[-1].rstrip("… ").strip()
    for case in {digits.split("–")[0], digits.split("–")[-1]}:
        seen = _attempts(channel, case, len(words) + 3)
        expected = words + [words[-1]] * 3 if repeats else words
        assert [r for r, _ in seen[:len(expected)]] == expected, (case, seen)
        if repeats:
            assert all(retryable for _, retryable in seen), (case, seen)
        else:  # the last word ends the delivery: delivered, or a failure not retried
            last, retryable = seen[len(words) - 1]
            assert last == DELIVERED or not retryable, (case, seen)
            assert all(retryable for _, retryable in seen[:len(words) - 1]), (case, seen)
