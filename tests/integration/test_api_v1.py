"""/api/v1 through the app's ASGI face: every operation, the scopes, another account's jobs
(404), problem details with the reply code, and Idempotency-Key under concurrent repeats."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from mailgw.accounts import tokens
from mailgw.documents.samples import make_pdf, make_wav
from mailgw.store import Job
from tests.conftest import SENDER, RunningApp, Sink, wait_until
from tests.integration.api_client import (
    UNLIMITED,
    Tokens,
    api_tokens,
    bearer,
    client_for,
    served,
)

__all__ = ["api_tokens"]  # the fixture, used by name
BOB = "bob@example.com"
PROBLEM = "application/problem+json"


@pytest.fixture(params=["sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'api.db'}"


@pytest.fixture
def gw(make_app: Any) -> RunningApp:
    app: RunningApp = make_app(**UNLIMITED)
    app.add_account()
    app.add_account(BOB, "B0bPass")
    return app


@pytest.fixture
def client(gw: RunningApp) -> Iterator[TestClient]:
    yield from client_for(gw)


@pytest.fixture
def admin(gw: RunningApp, api_tokens: Tokens) -> dict[str, str]:
    return bearer(api_tokens.issue(gw.store, SENDER, "admin"))


def _fax(client: TestClient, headers: dict[str, str], number: str = "0170709901",
         ref: str = "R1", **data: str) -> Any:
    return client.post("/api/v1/jobs", headers=headers,
                       data={"channel": "fax", "numbers": number, "ref": ref, **data},
                       files={"documents": ("doc.pdf", make_pdf([["a"], ["b"]]),
                                            "application/pdf")})


def _problem(r: Any, status: int, code: int | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    assert body.get("code") == code
    return body


def test_tokens_and_scopes(gw: RunningApp, client: TestClient, api_tokens: Tokens) -> None:
    r = client.get("/api/v1/jobs")
    _problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    _problem(client.get("/api/v1/jobs", headers=bearer("wrong")), 401)
    _problem(client.get("/api/v1/jobs", headers={"Authorization": "Basic eDp5"}), 401)
    _problem(client.get("/api/v1/jobs", headers=bearer("mgw_" + "A" * 43)), 401)
    revoked = api_tokens.issue(gw.store, SENDER, "admin")
    assert client.get("/api/v1/jobs", headers=bearer(revoked)).status_code == 200
    with gw.store.tx() as s:
        assert tokens.revoke(s, tokens.verify(gw.store, revoked).token_id)  # type: ignore[union-attr]
    _problem(client.get("/api/v1/jobs", headers=bearer(revoked)), 401)
    reader = bearer(api_tokens.issue(gw.store, SENDER, "jobs:read"))
    writer = bearer(api_tokens.issue(gw.store, SENDER, "jobs:write"))
    library = bearer(api_tokens.issue(gw.store, SENDER, "library"))
    assert client.get("/api/v1/jobs", headers=reader).status_code == 200
    _problem(_fax(client, reader), 403)
    _problem(client.get("/api/v1/jobs", headers=library), 403)
    _problem(client.get("/api/v1/groups", headers=reader), 403)
    _problem(client.patch("/api/v1/account", headers=writer, json={"lang": "fr"}), 403)
    _problem(client.get("/api/v1/webhook", headers=reader), 403)
    assert _fax(client, writer).status_code == 201
    assert client.get("/api/v1/groups", headers=library).status_code == 200
    assert client.get("/api/v1/library", headers=library).status_code == 200
    _problem(client.get("/api/v1/nothing", headers=reader), 404)
    r = client.delete("/api/v1/jobs", headers=reader)
    _problem(r, 405)
    assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_a_token_over_its_rate_gets_429(make_app: Any, api_tokens: Tokens) -> None:
    gw: RunningApp = make_app(http={"token_rate": 0.01, "token_burst": 2})
    gw.add_account()
    token = bearer(api_tokens.issue(gw.store, SENDER, "jobs:read"))
    other = bearer(api_tokens.issue(gw.store, SENDER, "jobs:read"))
    for client in client_for(gw):
        assert [client.get("/api/v1/jobs", headers=token).status_code
                for _ in range(2)] == [200, 200]
        r = client.get("/api/v1/jobs", headers=token)
        _problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/api/v1/jobs", headers=other).status_code == 200  # per token


def test_create_show_list_and_report(gw: RunningApp, client: TestClient,
                                     admin: dict[str, str]) -> None:
    r = _fax(client, admin, ref="INV-7", comment="first: batch", quality="best")
    assert r.status_code == 201, r.text
    created = r.json()
    job = created["job"]
    assert created["code"] == 80 and created["job_ids"] == [job["id"]]
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["channel"] == "fax" and job["ref"] == "INV-7" and job["pages"] == 2
    assert job["comment"] == "first: batch"
    assert [d["number"] for d in job["deliveries"]] == ["+33170709901"]
    shown = client.get(f"/api/v1/jobs/{job['id']}", headers=admin).json()
    assert set(shown) >= {"id", "channel", "account", "sender", "message_id", "state",
                          "outcome", "created_at", "when", "ref", "comment", "pages",
                          "deliveries"}
    assert set(shown["deliveries"][0]) >= {"id", "number", "state", "pages_sent",
                                           "pages_total", "csid", "attempts"}
    later = (datetime.now().astimezone() + timedelta(days=2)).replace(microsecond=0)
    r = client.post("/api/v1/jobs", headers=admin, json={
        "channel": "fax", "numbers": ["+33 1 70 70 99 02"], "ref": "R2",
        "send_at": later.isoformat()})
    _problem(r, 422, 92)  # JSON: no document, and R2 names no stored one
    r = _fax(client, admin, number="0170709902", ref="R2", send_at=later.isoformat())
    assert r.status_code == 201 and r.json()["code"] == 81, r.text
    deferred = r.json()["job"]
    assert deferred["state"] == "scheduled"
    assert datetime.fromisoformat(deferred["when"]) == later.replace(second=0)
    _fax(client, admin, number="0170709903", ref="R3")
    preview = _fax(client, admin, number="0170709904", ref="P", preview="yes")
    assert preview.status_code == 200 and preview.json()["job"] is None, preview.text
    assert preview.json()["code"] == 80 and preview.json()["job_ids"] == []
    page = client.get("/api/v1/jobs", headers=admin, params={"limit": 2}).json()
    assert len(page["jobs"]) == 2 and page["next_cursor"]
    rest = client.get("/api/v1/jobs", headers=admin,
                      params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [j["id"] for j in page["jobs"] + rest["jobs"]] == sorted(
        [job["id"], deferred["id"], job["id"] + 2], reverse=True)
    assert rest["next_cursor"] is None

    def ids(**params: str) -> list[int]:
        r = client.get("/api/v1/jobs", headers=admin, params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    assert ids(ref="R2") == [deferred["id"]]
    assert ids(number="01 70 70 99 02") == [deferred["id"]]
    assert ids(number="+33170709901") == [job["id"]]
    assert ids(state="scheduled") == [deferred["id"]]
    assert ids(to="2000-01-01") == []
    assert len(ids(**{"from": "2000-01-01T00:00:00Z"})) == 3
    _problem(client.get("/api/v1/jobs", headers=admin, params={"cursor": "nope"}), 400)
    _problem(client.get("/api/v1/jobs", headers=admin, params={"state": "x"}), 422)
    _problem(client.get("/api/v1/jobs", headers=admin, params={"from": "yesterday"}), 422)
    r = client.get(f"/api/v1/jobs/{job['id']}/report.csv", headers=admin)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "REF_LIST;ID_LINE;INT_NUMBER;STATUS_CODE;STATUS_TEXT;DELIVERYDATE;" \
                       "PAGES;CSID;ATTEMPTS"
    assert lines[1].startswith("INV-7;1;33170709901;")


def test_refusals_are_problems_with_the_code(gw: RunningApp, client: TestClient,
                                             api_tokens: Tokens) -> None:
    gw.add_account("poor@example.com", "P00rPass", credits=0)
    poor = bearer(api_tokens.issue(gw.store, "poor@example.com", "jobs:write"))
    _problem(_fax(client, poor), 402, 83)
    alice = bearer(api_tokens.issue(gw.store, SENDER, "jobs:write"))
    body = _problem(_fax(client, alice, number="12"), 422, 84)
    assert "12" in body["detail"]
    _problem(_fax(client, alice, send_at="2001-01-01T10:00:00+01:00"), 422, 85)
    _problem(_fax(client, alice, number="@nobody"), 422, 86)
    _problem(client.post("/api/v1/jobs", headers=alice, json={"channel": "voice",
                                                             "numbers": ["0170709901"]}),
             422, 90)
    _problem(client.post("/api/v1/jobs", headers=alice,
                         files={"documents": ("x.pdf", b"%PDF-1.4 broken", "application/pdf")},
                         data={"channel": "fax", "numbers": "0170709901"}), 422, 93)
    _problem(client.post("/api/v1/jobs", headers=alice, json={"channel": "sms"}), 422)
    _problem(client.post("/api/v1/jobs", headers=alice, json={
        "channel": "fax", "numbers": ["0170709901"], "ref": "a:b"}), 422)
    _problem(client.post("/api/v1/jobs", headers=alice, json={
        "channel": "fax", "numbers": ["0170709901"], "options": {"colour": "yes"}}), 422)
    r = client.post("/api/v1/jobs", content=b"{", headers={**alice,
                                                           "Content-Type": "application/json"})
    _problem(r, 400)
    r = client.post("/api/v1/jobs", content=b"x", headers={**alice, "Content-Type": "text/plain"})
    _problem(r, 415)


def test_another_accounts_job_is_not_found(gw: RunningApp, client: TestClient,
                                           api_tokens: Tokens, admin: dict[str, str]) -> None:
    job_id = _fax(client, admin).json()["job"]["id"]
    bob = bearer(api_tokens.issue(gw.store, BOB, "admin"))
    for r in (client.get(f"/api/v1/jobs/{job_id}", headers=bob),
              client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bob),
              client.post(f"/api/v1/jobs/{job_id}/retry", headers=bob),
              client.get(f"/api/v1/jobs/{job_id}/report.csv", headers=bob),
              client.get("/api/v1/jobs/999999", headers=admin)):
        _problem(r, 404)
    assert client.get("/api/v1/jobs", headers=bob).json()["jobs"] == []
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=admin).json()["jobs"]] == [
        job_id]
    with gw.store.read() as s:  # bob's cancel touched nothing
        assert s.get(Job, job_id).state in ("active", "done")  # type: ignore[union-attr]


def test_cancel_and_retry(gw: RunningApp, client: TestClient, admin: dict[str, str]) -> None:
    later = (datetime.now().astimezone() + timedelta(days=1)).isoformat()
    deferred = _fax(client, admin, send_at=later).json()["job"]
    r = client.post(f"/api/v1/jobs/{deferred['id']}/cancel", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["cancelled"] == 1 and r.json()["job"]["state"] == "cancelled"
    _problem(client.post(f"/api/v1/jobs/{deferred['id']}/cancel", headers=admin), 409, 96)
    failing = _fax(client, admin, number="0170709997").json()["job"]  # not in service
    wait_until(lambda: client.get(f"/api/v1/jobs/{failing['id']}", headers=admin)
               .json()["deliveries"][0]["state"] == "failed", what="the call failed")
    r = client.post(f"/api/v1/jobs/{failing['id']}/retry", headers=admin)
    assert r.status_code == 200 and r.json()["queued"] == 1, r.text
    wait_until(lambda: client.get(f"/api/v1/jobs/{failing['id']}", headers=admin)
               .json()["deliveries"][0]["attempts"].__len__() == 2, what="the second call")
    delivered = _fax(client, admin, number="0170709905").json()["job"]
    wait_until(lambda: client.get(f"/api/v1/jobs/{delivered['id']}", headers=admin)
               .json()["state"] == "done", what="delivered")
    _problem(client.post(f"/api/v1/jobs/{delivered['id']}/retry", headers=admin), 409)
    _problem(client.post(f"/api/v1/jobs/{delivered['id']}/cancel", headers=admin), 409, 96)


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_idempotency_key_under_concurrent_repeats(gw: RunningApp, client: TestClient,
                                                  admin: dict[str, str]) -> None:
    key = {"Idempotency-Key": "order-4711"}
    answers: list[Any] = []
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        answers.append(_fax(client, {**admin, **key}))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 8
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    assert len({r.json()["job"]["id"] for r in answers}) == 1
    again = _fax(client, {**admin, **key})
    assert again.status_code == 201 and again.json()["job_ids"] == answers[0].json()["job_ids"]
    other = _fax(client, {**admin, "Idempotency-Key": "order-4712"})
    assert other.json()["job_ids"] != answers[0].json()["job_ids"]
    with gw.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 2


def test_account_settings(gw: RunningApp, client: TestClient, api_tokens: Tokens,
                          admin: dict[str, str]) -> None:
    r = client.get("/api/v1/account", headers=admin)
    assert r.status_code == 200 and r.json()["email"] == SENDER
    assert r.json()["credits"] is None and r.json()["lang"] == "en"
    r = client.patch("/api/v1/account", headers=admin, json={
        "lang": "fr", "tz": "America/Guadeloupe", "quality": "best", "cover": True,
        "test_number": "01 70 70 99 09", "send_window": "08:00-20:00"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["lang"], got["tz"], got["quality"], got["cover"], got["test_number"],
            got["send_window"]) == ("fr", "America/Guadeloupe", "best", True, "+33170709909",
                                    "08:00-20:00")
    r = client.patch("/api/v1/account", headers=admin,
                     json={"send_window": "08:00-20:00 Mon-Fri"})  # docs/api.md's example
    assert r.status_code == 200 and r.json()["send_window"] == "08:00-20:00 Mon-Fri", r.text
    r = client.patch("/api/v1/account", headers=admin, json={"test_number": None})
    assert r.json()["test_number"] is None
    _problem(client.patch("/api/v1/account", headers=admin, json={"tz": "Mars/Olympus"}), 422)
    _problem(client.patch("/api/v1/account", headers=admin, json={"credits": 1000}), 422)
    _problem(client.patch("/api/v1/account", headers=admin, json={"cover": "maybe"}), 422)
    reader = bearer(api_tokens.issue(gw.store, SENDER, "jobs:read"))
    assert client.get("/api/v1/account", headers=reader).json()["lang"] == "fr"


def test_webhook(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/webhook", headers=admin).json() == {"url": None,
                                                                  "secret_set": False}
    r = client.put("/api/v1/webhook", headers=admin, json={"url": "https://hooks.example/x"})
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    assert len(secret) >= 32 and r.json()["url"] == "https://hooks.example/x"
    shown = client.get("/api/v1/webhook", headers=admin).json()
    assert shown == {"url": "https://hooks.example/x", "secret_set": True}
    again = client.put("/api/v1/webhook", headers=admin, json={"url": "https://hooks.example/x"})
    assert again.json()["secret"] != secret  # a new secret each time
    _problem(client.put("/api/v1/webhook", headers=admin, json={"url": "ftp://x"}), 422)
    assert client.delete("/api/v1/webhook", headers=admin).status_code == 204
    assert client.get("/api/v1/webhook", headers=admin).json()["url"] is None


def test_library(gw: RunningApp, client: TestClient, api_tokens: Tokens) -> None:
    lib = bearer(api_tokens.issue(gw.store, SENDER, "library", "jobs:write"))
    r = client.post("/api/v1/library", headers=lib, data={"ref": "Promo-1"},
                    files={"sound": ("promo.wav", make_wav(2.0), "audio/wav")})
    assert r.status_code == 201, r.text
    assert r.json()["ref"] == "promo-1" and 1.5 < r.json()["duration"] < 2.5
    listed = client.get("/api/v1/library", headers=lib).json()["messages"]
    assert [m["ref"] for m in listed] == ["promo-1"]
    r = client.post("/api/v1/jobs", headers=lib, json={
        "channel": "voice", "numbers": ["0170709901"], "library_ref": "promo-1",
        "options": {"retries": 1, "welcome": False}})
    assert r.status_code == 201 and r.json()["job"]["channel"] == "voice", r.text
    _problem(client.post("/api/v1/library", headers=lib, data={"ref": "bad"},
                         files={"sound": ("x.wav", b"RIFF0000WAVEnothing", "audio/wav")}),
             422, 93)
    _problem(client.post("/api/v1/library", headers=lib, data={"ref": "a b"},
                         files={"sound": ("x.wav", make_wav(1.0), "audio/wav")}), 422)
    assert client.delete("/api/v1/library/promo-1", headers=lib).status_code == 204
    _problem(client.delete("/api/v1/library/promo-1", headers=lib), 404)
    bob = bearer(api_tokens.issue(gw.store, BOB, "library"))
    assert client.get("/api/v1/library", headers=bob).json()["messages"] == []


def test_groups(gw: RunningApp, client: TestClient, api_tokens: Tokens,
                admin: dict[str, str]) -> None:
    lib = bearer(api_tokens.issue(gw.store, SENDER, "library"))
    r = client.post("/api/v1/groups", headers=lib, json={
        "name": "clients", "numbers": ["0170709901", "+33170709901", "12", "0170709902"]})
    assert r.status_code == 201, r.text
    assert (r.json()["added"], r.json()["duplicates"], r.json()["invalid"]) == (2, 1, ["12"])
    _problem(client.post("/api/v1/groups", headers=lib, json={"name": "clients"}), 409)
    csv_semicolon = "NOM;FAX\nDupont;01 70 70 99 03\nMartin;0170709901\nX;abc\n"
    r = client.post("/api/v1/groups/clients/import", headers=lib,
                    files={"file": ("list.csv", csv_semicolon.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    assert (r.json()["added"], r.json()["duplicates"], r.json()["invalid_count"]) == (1, 1, 1)
    csv_comma = "name,fax\nLeroy,0170709904\nLeroy,0170709904\n"
    r = client.post("/api/v1/groups/others/import", headers={**lib, "Content-Type": "text/csv"},
                    content=csv_comma.encode())
    assert (r.json()["added"], r.json()["duplicates"]) == (1, 1), r.text
    listed = client.get("/api/v1/groups", headers=lib).json()["groups"]
    assert listed == [{"name": "clients", "members": 3}, {"name": "others", "members": 1}]
    members = client.get("/api/v1/groups/clients", headers=lib).json()["members"]
    assert {"number": "+33170709903", "columns": {"NOM": "Dupont", "FAX": "01 70 70 99 03"}} \
        in members or any(m["number"] == "+33170709903" and m["columns"].get("NOM") == "Dupont"
                          for m in members)
    r = client.post("/api/v1/jobs", headers=admin, json={
        "channel": "fax", "numbers": ["@clients"], "ref": "R"},)
    _problem(r, 422, 92)  # the group resolves; the document is what is missing
    r = client.put("/api/v1/groups/clients", headers=lib, json={"numbers": ["0170709905"]})
    assert r.status_code == 200 and r.json()["added"] == 1
    assert len(client.get("/api/v1/groups/clients", headers=lib).json()["members"]) == 1
    r = _fax(client, admin, number="@clients")
    assert r.status_code == 201 and [d["number"] for d in r.json()["job"]["deliveries"]] == [
        "+33170709905"]
    bob = bearer(api_tokens.issue(gw.store, BOB, "library"))
    _problem(client.get("/api/v1/groups/clients", headers=bob), 404)
    _problem(client.delete("/api/v1/groups/clients", headers=bob), 404)
    assert client.delete("/api/v1/groups/clients", headers=lib).status_code == 204
    _problem(client.get("/api/v1/groups/clients", headers=lib), 404)


def test_document_and_docs_page(client: TestClient) -> None:
    doc = client.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    ops = [(m, p, o["operationId"]) for p, item in doc["paths"].items() for m, o in item.items()]
    assert len(ops) == 20
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for method, path, op_id in ops:
        assert f"{method.upper()} {path}" in page.text and f"id={op_id}" in page.text


def test_a_job_over_http_is_dialled_and_its_notice_arrives(gw: RunningApp, sink: Sink,
                                                           api_tokens: Tokens) -> None:
    """End to end over a real socket: POST /api/v1/jobs, the simulator dials, the notice
    reaches the smarthost, and the job shows the attempt."""
    token = bearer(api_tokens.issue(gw.store, SENDER, "jobs:write", "jobs:read"))
    with served(gw) as base, httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/api/v1/jobs", headers={**token, "Idempotency-Key": "e2e-1"},
                      data={"channel": "fax", "numbers": "0170709901", "ref": "E2E"},
                      files={"documents": ("doc.pdf", make_pdf([["a"], ["b"]]),
                                           "application/pdf")})
        assert r.status_code == 201, r.text
        job_id = r.json()["job"]["id"]
        mails = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                              what="the notice")
        notice = next(m for m in mails if m["X-Mailgw-Kind"] == "notice")
        assert notice["X-Mailgw-Job"] == str(job_id)
        assert notice["X-Mailgw-State"] == "delivered"
        assert not [m for m in mails if m["X-Mailgw-Kind"] == "ack"]  # the answer was HTTP
        job = http.get(f"/api/v1/jobs/{job_id}", headers=token).json()
        delivery = job["deliveries"][0]
        assert delivery["state"] == "delivered" and delivery["pages_sent"] == 2
        assert delivery["csid"] and delivery["attempts"][0]["result"] == "delivered"
