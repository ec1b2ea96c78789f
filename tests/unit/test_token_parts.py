"""The pure parts of API tokens: scopes, the token's shape, its hash, the request rate."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from mailgw.accounts.rate import TokenRate
from mailgw.accounts.tokens import (
    SCOPES,
    Principal,
    TokenView,
    digest,
    parse_scopes,
    token_shaped,
)
from mailgw.ops import config

TOKEN = "mgw_" + "A" * 20 + "-_" + "b9" * 10 + "z"  # 43 URL-safe characters


def test_scopes_parsed_from_the_cli_form_or_a_list() -> None:
    assert parse_scopes("jobs:write,jobs:read") == {"jobs:write", "jobs:read"}
    assert parse_scopes(" Jobs:Read , library ,") == {"jobs:read", "library"}
    assert parse_scopes(["admin"]) == {"admin"}
    assert set(SCOPES) == parse_scopes(",".join(SCOPES))


@pytest.mark.parametrize("text", ["jobs:delete", "jobs:read,root", "jobs"])
def test_unknown_scope_is_a_value_error_naming_the_known_ones(text: str) -> None:
    with pytest.raises(ValueError, match="unknown scope") as info:
        parse_scopes(text)
    assert "jobs:write, jobs:read, library, admin" in str(info.value)


def test_no_scope_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        parse_scopes(" , ")


def test_only_token_shaped_strings_are_tokens() -> None:
    assert len(TOKEN) == 47 and token_shaped(TOKEN)
    for other in ("FGB45L", "correct horse battery staple", "", TOKEN[:-1], TOKEN + "x",
                  "mgx_" + TOKEN[4:], TOKEN.replace("A", "+", 1), " " + TOKEN,
                  "alice@example.com:FGB45L"):
        assert not token_shaped(other), other


def test_hash_is_sha256_hex_of_the_whole_token() -> None:
    assert digest(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in digest(TOKEN) and len(digest(TOKEN)) == 64


def test_admin_allows_every_scope_others_only_theirs() -> None:
    reader = Principal(1, "ci", 1, "a@example.com", frozenset({"jobs:read"}))
    admin = Principal(2, "ops", 1, "a@example.com", frozenset({"admin"}))
    assert reader.allows("jobs:read") and not reader.allows("jobs:write")
    assert all(admin.allows(s) for s in SCOPES)


def test_token_state_revoked_then_expired_then_active() -> None:
    now = datetime(2026, 12, 8, tzinfo=UTC)
    view = TokenView(1, "a@example.com", "ci", "mgw_abcdefgh", ("jobs:read",), now, None,
                     now + timedelta(days=1), None)
    assert view.state(now) == "active"
    assert view.state(now + timedelta(days=1)) == "expired"
    revoked = TokenView(*[*view.__dict__.values()][:-1], now)
    assert revoked.state(now) == "revoked"


def test_rate_allows_the_burst_then_tells_how_long_to_wait() -> None:
    rate = TokenRate(rate=10, burst=4)
    assert [rate.check("t1", 100.0) for _ in range(4)] == [0.0] * 4
    assert rate.check("t1", 100.0) == pytest.approx(0.1)
    assert rate.check("t2", 100.0) == 0.0  # another token has its own bucket
    assert rate.check("t1", 100.05) == pytest.approx(0.05)  # a refusal takes nothing
    assert rate.check("t1", 100.1) == 0.0  # waited as told: passes
    assert rate.check("t1", 100.1) > 0


def test_rate_refills_to_the_burst_only() -> None:
    rate = TokenRate(rate=2, burst=3)
    for _ in range(3):
        assert rate.check("k", 0.0) == 0.0
    assert rate.check("k", 0.0) == pytest.approx(0.5)
    # an hour idle gives back the burst, not 7200 requests
    assert [rate.check("k", 3600.0) for _ in range(4)][-1] == pytest.approx(0.5)


def test_rate_zero_means_no_limit_and_memory_is_bounded() -> None:
    free = TokenRate(rate=0, burst=1)
    assert all(free.check("k", 0.0) == 0.0 for _ in range(1000))
    small = TokenRate(rate=1, burst=1, most=10)
    for key in range(100):
        assert small.check(key, float(key) * 10) == 0.0  # each bucket refilled before the next
    assert len(small._buckets) <= 10
    assert small.check(99, 990.0) > 0  # the busy one is still remembered


def test_token_rate_settings_are_checked() -> None:
    s = config.load(search=False, environ={}, overrides={})
    assert (s.http.token_rate, s.http.token_burst) == (10.0, 40)
    with pytest.raises(config.ConfigError) as info:
        config.load(search=False, environ={},
                    overrides={"http": {"token_rate": -1, "token_burst": 0}})
    assert {"http.token_rate: must be 0 (no limit) or more",
            "http.token_burst: must be at least 1"} <= set(info.value.problems)
