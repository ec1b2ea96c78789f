"""API tokens on SQLite and PostgreSQL: issued once, kept as a hash, verified, revoked,
expired; the gateway password is never a token; wrong tokens are slowed per client address
while the valid token is always accepted; `mailgw token add|list|revoke`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, event, inspect, select, text

from mailgw.accounts import accounts, tokens
from mailgw.accounts.rate import TokenRate
from mailgw.accounts.token_gate import TokenGate
from mailgw.intake.guessing import Guard, GuessPolicy
from mailgw.store import Account, Base, Store
from mailgw.store.models import ApiToken
from tests.conftest import PASSWORD
from tests.integration.test_cli import mailgw

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.upgrade()
    with s.tx() as session:
        for email in (ALICE, BOB):
            accounts.add_account(session, email, PASSWORD, region="FR", lang="en",
                                 tz="Europe/Paris", credits=None)
    yield s
    s.dispose()


def issue(store: Store, email: str = ALICE, name: str = "ci", scopes: str = "jobs:write",
          expires_at: datetime | None = None) -> tuple[int, str]:
    with store.tx() as s:
        return tokens.issue(s, email, name, scopes, expires_at=expires_at)


def test_issued_token_verifies_until_revoked(store: Store) -> None:
    token_id, token = issue(store, scopes="jobs:write,jobs:read")
    assert token.startswith("mgw_") and tokens.token_shaped(token)
    p = tokens.verify(store, token)
    assert p is not None
    assert (p.token_id, p.name, p.account_email) == (token_id, "ci", ALICE)
    assert p.scopes == {"jobs:write", "jobs:read"} and not p.allows("library")
    with store.read() as s:
        alice_id = accounts.find_by_email(s, ALICE).id  # type: ignore[union-attr]
    assert p.account_id == alice_id
    with store.tx() as s:
        assert tokens.revoke(s, token_id) is True
    assert tokens.verify(store, token) is None
    with store.tx() as s:
        assert tokens.revoke(s, token_id) is False  # revoked before
        assert tokens.revoke(s, 999_999) is False  # no such token
    with store.read() as s:
        [view] = tokens.list_tokens(s, ALICE)
    assert view.state() == "revoked" and view.revoked_at is not None


def test_expired_token_is_refused(store: Store) -> None:
    now = datetime.now(UTC)
    _, token = issue(store, expires_at=now + timedelta(hours=1))
    assert tokens.verify(store, token, now=now) is not None
    assert tokens.verify(store, token, now=now + timedelta(hours=1)) is None
    with pytest.raises(ValueError, match="in the future"):
        issue(store, name="old", expires_at=now - timedelta(seconds=1))


def test_wrong_or_altered_tokens_are_refused(store: Store) -> None:
    _, token = issue(store)
    last = "A" if token[-1] != "A" else "B"
    for wrong in (token[:-1] + last, token[:12] + "x" * 35, token.upper(), token + "=", "",
                  "Bearer " + token):
        assert tokens.verify(store, wrong) is None, wrong
    assert tokens.verify(store, f"  {token}\r\n") is not None  # a header's stray blanks


def test_token_of_a_deleted_account_is_gone(store: Store) -> None:
    _, token = issue(store, email=BOB)
    with store.tx() as s:
        s.execute(delete(Account).where(Account.email == BOB))  # the rows cascade
    assert tokens.verify(store, token) is None
    with store.read() as s:
        assert tokens.list_tokens(s) == []


def test_names_unique_per_account_scopes_and_accounts_checked(store: Store) -> None:
    issue(store, name="ci")
    with pytest.raises(ValueError, match="already has a token named 'ci'"):
        issue(store, name="ci", scopes="jobs:read")
    issue(store, email=BOB, name="ci")  # another account may use the name
    with pytest.raises(ValueError, match="unknown scope jobs:delete"):
        issue(store, name="other", scopes="jobs:read,jobs:delete")
    with pytest.raises(ValueError, match="no account nobody@example.com"):
        issue(store, email="nobody@example.com", name="x")
    with pytest.raises(ValueError, match="needs a name"):
        issue(store, name="  ")
    with store.read() as s:
        assert [(v.account_email, v.name) for v in tokens.list_tokens(s)] == [
            (ALICE, "ci"), (BOB, "ci")]
        assert [v.name for v in tokens.list_tokens(s, BOB)] == ["ci"]


def _everything_stored(store: Store) -> str:
    """Every row of every table, as text."""
    out = []
    with store.read_engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            out += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


def test_only_the_hash_is_at_rest(store: Store) -> None:
    _, token = issue(store)
    assert tokens.verify(store, token) is not None
    stored = _everything_stored(store)
    secret = token[tokens.PREFIX_LENGTH:]
    assert token not in stored and secret not in stored and secret[:16] not in stored
    assert tokens.digest(token) in stored and token[:tokens.PREFIX_LENGTH] in stored
    with store.read() as s:
        view = tokens.list_tokens(s, ALICE)[0]
    assert secret not in repr(view) and view.prefix == token[:12]


def test_the_gateway_password_never_works_as_a_token(store: Store) -> None:
    issue(store)
    gate = TokenGate(store)
    for presented in (PASSWORD, f"{ALICE}:{PASSWORD}", f"{PASSWORD}:{ALICE}",
                      f"mgw_{PASSWORD}", accounts.normalize_address(ALICE)):
        assert tokens.verify(store, presented) is None, presented
        assert gate.check(presented, "198.51.100.4")[0] is None
    # even a password that looks like a token is no token: only issued hashes verify
    shaped = "mgw_" + "P" * 43
    with store.tx() as s:
        accounts.set_password(s, BOB, shaped)
    assert tokens.verify(store, shaped) is None


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    token_id, token = issue(store)
    writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            writes.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    t0 = datetime.now(UTC).replace(microsecond=0)
    try:
        for second in range(0, 60, 2):  # 30 requests within the minute
            assert tokens.verify(store, token, now=t0 + timedelta(seconds=second))
        assert len(writes) == 1
        assert tokens.verify(store, token, now=t0 + timedelta(seconds=61))
        assert len(writes) == 2
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    with store.read() as s:
        last = s.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))
    assert last == t0 + timedelta(seconds=61)


def test_wrong_tokens_slowed_valid_token_accepted_during_the_flood(store: Store) -> None:
    _, token = issue(store)
    other_id, other = issue(store, email=BOB)
    gate = TokenGate(store, Guard(GuessPolicy(failures=3, delay=1.0, max_delay=8.0)))
    attacker = "203.0.113.7"
    delays = []
    for i in range(60):
        if i % 10 == 9:  # the owner, from the very address that floods
            principal, delay = gate.check(token, attacker)
            assert principal is not None and principal.account_email == ALICE
            assert delay == 0.0
            continue
        wrong = [token[:-1] + ("A" if token[-1] != "A" else "B"), PASSWORD,
                 "mgw_" + "Q" * 43, None][i % 4]
        principal, delay = gate.check(wrong, attacker)
        assert principal is None
        delays.append(delay)
    assert delays[:2] == [0.0, 0.0]  # below [limits] auth_failures: no delay
    assert delays[2] == 1.0 and delays[3] == 2.0 and delays[4] == 4.0  # then it doubles
    assert max(delays) == 8.0 and delays[-1] == 8.0  # up to auth_delay_max
    # the network is slowed too, another network is not, and every valid token passes
    assert gate.check("nope", "203.0.113.99")[1] == 8.0
    assert gate.check("nope", "192.0.2.1") == (None, 0.0)
    assert gate.check(token, "203.0.113.99")[1] == 0.0
    principal, delay = gate.check(other, attacker)
    assert principal is not None and principal.token_id == other_id and delay == 0.0


def test_gate_limits_requests_per_token(store: Store) -> None:
    _, token = issue(store)
    _, other = issue(store, email=BOB)
    clock = [1000.0]
    gate = TokenGate(store, rate=TokenRate(rate=2, burst=3), clock=lambda: clock[0])
    alice, _ = gate.check(token, "192.0.2.1")
    bob, _ = gate.check(other, "192.0.2.1")
    assert alice is not None and bob is not None
    assert [gate.throttle(alice) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert gate.throttle(alice) == pytest.approx(0.5)  # Retry-After
    assert gate.throttle(bob) == 0.0
    clock[0] += 0.5
    assert gate.throttle(alice) == 0.0


def test_migration_matches_the_model(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diff if "api_token" in repr(d)]
    assert mine == []


@pytest.fixture
def cfg(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "mailgw.toml"
    path.write_text(f'[store]\nurl = "{store_url}"\n[log]\nformat = "json"\n', encoding="utf-8")
    return path


def test_token_commands(cfg: Path, store_url: str) -> None:
    c = ["--config", str(cfg)]
    assert mailgw("account", "add", ALICE, "--password-stdin", *c, stdin=PASSWORD + "\n"
                  ).returncode == 0
    r = mailgw("token", "add", ALICE, "--name", "ci", "--scope", "jobs:write,jobs:read",
               "--expires", "90d", *c)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert tokens.token_shaped(token) and r.stdout == token + "\n"  # alone on stdout
    assert "not shown again" in r.stderr and token not in r.stderr
    r = mailgw("token", "add", ALICE, "--name", "ci", "--scope", "jobs:read", *c)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "already has" in r.stderr
    r = mailgw("token", "add", ALICE, "--name", "x", "--scope", "jobs:delete", *c)
    assert r.returncode == 1 and "unknown scope jobs:delete" in r.stderr
    r = mailgw("token", "add", ALICE, "--name", "x", "--scope", "admin", "--expires", "soon",
               *c)
    assert r.returncode == 2 and r.stderr.startswith("mailgw: --expires")
    r = mailgw("token", "add", "nobody@example.com", "--name", "x", "--scope", "admin", *c)
    assert r.returncode == 1 and "no account" in r.stderr

    store = Store(store_url)
    try:
        principal = tokens.verify(store, token)
        assert principal is not None and principal.scopes == {"jobs:write", "jobs:read"}
    finally:
        store.dispose()

    listed = mailgw("token", "list", *c)
    assert listed.returncode == 0 and token[:12] in listed.stdout
    assert token[12:] not in listed.stdout and "jobs:read,jobs:write" in listed.stdout
    assert "active" in listed.stdout and "last used 20" in listed.stdout
    [row] = json.loads(mailgw("token", "list", ALICE, "--json", *c).stdout)
    assert row["prefix"] == token[:12] and row["state"] == "active"
    assert row["scopes"] == ["jobs:read", "jobs:write"] and row["last_used_at"]
    expires = datetime.fromisoformat(row["expires_at"]) - datetime.fromisoformat(
        row["created_at"])
    assert timedelta(days=89, hours=23) < expires <= timedelta(days=90)
    assert token[12:] not in json.dumps(row)

    r = mailgw("token", "revoke", str(row["id"]), *c)
    assert r.returncode == 0 and f"token {row['id']} revoked" in r.stdout
    r = mailgw("token", "revoke", str(row["id"]), *c)
    assert r.returncode == 1 and "no active token" in r.stderr
    [row] = json.loads(mailgw("token", "list", "--json", *c).stdout)
    assert row["state"] == "revoked"
    assert mailgw("token", "list", "nobody@example.com", *c).returncode == 1
