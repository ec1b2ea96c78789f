"""The cloud drivers against local fakes of their providers (tests/fake_providers.py).

Sinch Fax API v3: multipart upload, Basic-authenticated callbacks (duplicated, late, out of
order, forged), status polling when no callback comes, 429 / 5xx / timeouts on the API.
Twilio Programmable Voice: call creation, TwiML (<Play>, <Gather> for * and 9, <Redirect>),
the sound at a signed URL, X-Twilio-Signature on every request, the account's calls per
second, cancel. Then the whole path over SMTP, and a callback taken by another process.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import socket
import struct
import urllib.error
import urllib.request
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfWriter
from sqlalchemy import func, select
from starlette.applications import Starlette

from mailgw.dispatch.drivers import cloud
from mailgw.dispatch.drivers.base import (
    BUSY,
    DELIVERED,
    LINE_DROPPED,
    NO_ANSWER,
    NOT_FAX,
    NOT_IN_SERVICE,
    PARTIAL,
    PROVIDER_ERROR,
    CallRequest,
    CallResult,
)
from mailgw.dispatch.setup import callback_handlers, make_driver
from mailgw.http import provider_routes
from mailgw.http.server import HttpServer
from mailgw.ops import config
from mailgw.store import Delivery, Job, Store
from mailgw.store.models import ProviderEvent
from mailgw.store.provider_events import StoreProviderEvents
from tests.conftest import PASSWORD, free_port, wait_until
from tests.fake_providers import FakeSinch, FakeTwilio, twilio_signature
from tests.integration.test_end_to_end import send

CALLBACK_PASSWORD = "cb-pass-123"


def pdf(pages: int = 3) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tone(seconds: float = 2.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i * 2 * math.pi * 440
                                                                     / rate)))
                               for i in range(int(seconds * rate))))
    return out.getvalue()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'cloud.db'}")
    s.upgrade()
    yield s
    s.dispose()


@pytest.fixture
def sinch() -> Iterator[FakeSinch]:
    fake = FakeSinch().start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


def sinch_settings(fake: FakeSinch, port: int, **extra: Any) -> config.Settings:
    section = {"api_url": fake.url, "project_id": fake.project, "key_id": fake.key_id,
               "key_secret": fake.key_secret, "public_url": f"http://127.0.0.1:{port}",
               "callback_password": CALLBACK_PASSWORD, "poll_interval": "30s",
               "timeout": "2s", "max_call_time": "20s", **extra}
    return config.load(search=False, environ={}, overrides={
        "dispatch": {"driver": "sinch"}, "http": {"listen": f"127.0.0.1:{port}"},
        "drivers": {"sinch": section}})


def twilio_settings(fake: FakeTwilio, port: int, **extra: Any) -> config.Settings:
    section = {"api_url": fake.url, "account_sid": fake.sid, "auth_token": fake.token,
               "from_number": "+33170709900", "public_url": f"http://127.0.0.1:{port}",
               "poll_interval": "30s", "timeout": "2s", "max_call_time": "20s",
               "calls_per_second": 0, **extra}
    return config.load(search=False, environ={}, overrides={
        "dispatch": {"driver": "twilio"}, "http": {"listen": f"127.0.0.1:{port}"},
        "drivers": {"twilio": section}})


@asynccontextmanager
async def endpoint(settings: config.Settings, store: Store) -> AsyncIterator[Any]:
    """mailgw's HTTP endpoint with the driver's callback routes, and the driver."""
    driver = make_driver(settings, store)
    callbacks = callback_handlers(settings, store, driver)
    http = HttpServer(Starlette(routes=provider_routes.routes(callbacks)))
    await http.start(settings.http.listen)
    try:
        yield driver
    finally:
        await http.stop()


def fax_request(number: str = "+33170709901", key: str = "d1-a1", **kw: Any) -> CallRequest:
    return CallRequest(delivery_id=1, attempt=1, channel="fax", number=number,
                       idempotency_key=key, document=kw.pop("document", pdf()),
                       pages_total=kw.pop("pages_total", 3), **kw)


def voice_request(number: str = "+33170709901", options: dict[str, str] | None = None,
                  key: str = "d1-a1") -> CallRequest:
    return CallRequest(delivery_id=1, attempt=1, channel="voice", number=number,
                       idempotency_key=key, document=tone(), sound_seconds=2.0,
                       options=options or {})


def run_sinch(store: Store, fake: FakeSinch, request: CallRequest, **extra: Any) -> CallResult:
    settings = sinch_settings(fake, free_port(), **extra)

    async def go() -> CallResult:
        async with endpoint(settings, store) as driver:
            result = await asyncio.wait_for(driver.place_call(request), 30)
            await asyncio.to_thread(fake.settle)
            return result

    return asyncio.run(go())


def run_twilio(store: Store, fake: FakeTwilio, request: CallRequest, **extra: Any
               ) -> CallResult:
    settings = twilio_settings(fake, free_port(), **extra)

    async def go() -> CallResult:
        async with endpoint(settings, store) as driver:
            result = await asyncio.wait_for(driver.place_call(request), 30)
            await asyncio.to_thread(fake.settle)
            return result

    return asyncio.run(go())


def rows(store: Store, driver: str) -> list[tuple[str, str, int]]:
    with store.read() as s:
        return [(r.provider_ref, r.status, r.rank) for r in s.scalars(
            select(ProviderEvent).where(ProviderEvent.driver == driver)
            .order_by(ProviderEvent.id))]


# -- Sinch --------------------------------------------------------------------------------------

def test_sinch_fax_with_duplicate_and_late_callbacks(store: Store, sinch: FakeSinch) -> None:
    sinch.duplicate = sinch.late_progress = True
    result = run_sinch(store, sinch, fax_request())
    assert (result.result, result.pages_sent) == (DELIVERED, 3), result
    (fax_id,) = sinch.faxes
    assert result.provider_ref == fax_id
    form = sinch.sent[0]
    assert form["to"] == "+33170709901" and form["maxRetries"] == "0"
    assert form["labels[mailgw-key]"] == "d1-a1"
    assert form["callbackUrlContentType"] == "application/json"
    assert form["callbackUrl"].startswith(f"http://mailgw:{CALLBACK_PASSWORD}@127.0.0.1:")
    assert "/callbacks/sinch/" in form["callbackUrl"]
    # Every callback (the duplicate and the late "in progress" too) was taken: 200.
    wait_until(lambda: len(sinch.callback_log) >= 6, what="callbacks")
    assert {status for _, status in sinch.callback_log} == {200}
    # One row per status; the late IN_PROGRESS never outranks COMPLETED.
    events = StoreProviderEvents(lambda: store).events("sinch", fax_id)
    assert events[0].status == "COMPLETED"
    assert [s for ref, s, _ in rows(store, "sinch") if ref == fax_id].count("COMPLETED") == 1
    # Nothing stored carries the callback credentials.
    with store.read() as s:
        payloads = " ".join(p or "" for p in s.scalars(select(ProviderEvent.payload)))
    assert CALLBACK_PASSWORD not in payloads and "callbackUrl" not in payloads


def test_sinch_multipart_callbacks_are_understood(store: Store, sinch: FakeSinch) -> None:
    async def go() -> CallResult:
        settings = sinch_settings(sinch, free_port())
        async with endpoint(settings, store) as driver:
            real = driver._send

            async def multipart_callbacks(request: CallRequest) -> dict[str, Any]:
                fax = await real(request)
                sinch.faxes[fax["id"]]["callbackUrlContentType"] = "multipart/form-data"
                return fax

            driver._send = multipart_callbacks
            return await driver.place_call(fax_request())

    assert asyncio.run(go()).result == DELIVERED
    assert {status for _, status in sinch.callback_log} == {200}


def test_sinch_429_and_5xx_are_tried_again(store: Store, sinch: FakeSinch) -> None:
    sinch.faults["send"] = ["429", "500"]
    result = run_sinch(store, sinch, fax_request())
    assert result.result == DELIVERED
    assert [r for r in sinch.requests if r[0] == "POST"].__len__() == 3
    assert len(sinch.faxes) == 1


def test_sinch_timeout_then_sent_once(store: Store, sinch: FakeSinch) -> None:
    sinch.faults["send"] = ["timeout"]
    result = run_sinch(store, sinch, fax_request(), timeout="1s")
    assert result.result == DELIVERED
    assert len(sinch.faxes) == 1


def test_sinch_lost_answer_does_not_fax_twice(store: Store, sinch: FakeSinch) -> None:
    """A 500 after the fax was created: the driver finds it by its label."""
    sinch.faults["send"] = ["500-created"]
    result = run_sinch(store, sinch, fax_request())
    assert result.result == DELIVERED
    assert len(sinch.faxes) == 1
    assert ("GET", f"/v3/projects/{sinch.project}/faxes") in sinch.requests


def test_sinch_polls_when_no_callback_comes(store: Store, sinch: FakeSinch) -> None:
    sinch.callbacks = False
    sinch.faults["get"] = ["429"]
    result = run_sinch(store, sinch, fax_request(), poll_interval="300ms")
    assert (result.result, result.pages_sent) == (DELIVERED, 3)
    assert sinch.callback_log == []
    assert sum(1 for m, p in sinch.requests if m == "GET" and p.count("/") == 5) >= 2


@pytest.mark.parametrize(("quality", "resolution"), [
    ("normal", "STANDARD"), ("high", "FINE"), ("best", "FINE")])
def test_sinch_gets_the_quality_as_its_resolution(store: Store, sinch: FakeSinch,
                                                  quality: str, resolution: str) -> None:
    result = run_sinch(store, sinch, fax_request(quality=quality), public_url="",
                       poll_interval="300ms")
    assert result.result == DELIVERED
    assert sinch.sent[0]["resolution"] == resolution
    (fax,) = sinch.faxes.values()
    assert fax["resolution"] == resolution


def test_sinch_without_public_url_polls(store: Store, sinch: FakeSinch) -> None:
    result = run_sinch(store, sinch, fax_request(), public_url="", poll_interval="300ms")
    assert result.result == DELIVERED
    assert "callbackUrl" not in sinch.sent[0]


@pytest.mark.parametrize(("number", "expected", "retryable", "pages"), [
    ("+33170709994", BUSY, True, 0),
    ("+33170709995", NO_ANSWER, True, 0),
    ("+33170709997", NOT_IN_SERVICE, False, 0),
    ("+33170709993", NOT_FAX, False, 0),
    ("+33170709996", LINE_DROPPED, True, 1),
])
def test_sinch_failures(store: Store, sinch: FakeSinch, number: str, expected: str,
                        retryable: bool, pages: int) -> None:
    result = run_sinch(store, sinch, fax_request(number))
    assert (result.result, result.retryable, result.pages_sent) == (expected, retryable, pages)
    assert result.error_code and result.error_text


def test_sinch_resume_counts_only_new_pages(store: Store, sinch: FakeSinch) -> None:
    result = run_sinch(store, sinch, fax_request(first_page=2))
    assert (result.result, result.pages_sent) == (DELIVERED, 2)


def test_sinch_same_key_adopts_the_fax(store: Store, sinch: FakeSinch) -> None:
    first = run_sinch(store, sinch, fax_request(key="d7-a1"))
    again = run_sinch(store, sinch, fax_request(key="d7-a1"))
    assert first.provider_ref == again.provider_ref and len(sinch.faxes) == 1


def test_sinch_forged_callbacks_change_nothing(store: Store, sinch: FakeSinch) -> None:
    sinch.forge = True
    result = run_sinch(store, sinch, fax_request())
    assert result.result == DELIVERED
    wait_until(lambda: any(w == "forged" for w, _ in sinch.callback_log), what="forged")
    assert {s for w, s in sinch.callback_log if w == "forged"} == {401}
    assert "FAILURE" not in [s for _, s, _ in rows(store, "sinch")]


def test_sinch_callback_route_checks(store: Store, sinch: FakeSinch) -> None:
    port = free_port()
    settings = sinch_settings(sinch, port)

    async def go() -> list[int]:
        async with endpoint(settings, store) as driver:
            token = cloud.sign(driver.token_key, {"d": 1}, 60)
            body = json.dumps({"event": "FAX_COMPLETED",
                               "fax": {"id": "X1", "status": "COMPLETED"}}).encode()
            auth = "Basic " + base64.b64encode(f"mailgw:{CALLBACK_PASSWORD}".encode()).decode()
            cases = [(f"/callbacks/sinch/{token}", {}),
                     (f"/callbacks/sinch/{token}", {"Authorization": "Basic bWFpbGd3Onh4"}),
                     ("/callbacks/sinch/not-a-token", {"Authorization": auth}),
                     (f"/callbacks/sinch/{token}", {"Authorization": auth}),
                     ("/callbacks/nobody/x", {"Authorization": auth})]
            out = []
            for path, headers in cases:
                out.append(await asyncio.to_thread(_post, port, path, body, headers))
            out.append(await asyncio.to_thread(_post, port, f"/callbacks/sinch/{token}",
                                               b"x" * 10, {"Authorization": auth}))
            return out

    assert asyncio.run(go()) == [401, 401, 403, 200, 404, 400]
    assert rows(store, "sinch") == [("X1", "COMPLETED", 100)]


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# -- Twilio ------------------------------------------------------------------------------------

def test_twilio_message_played(store: Store, twilio: FakeTwilio) -> None:
    twilio.duplicate = twilio.late_progress = True
    result = run_twilio(store, twilio, voice_request())
    assert result.result == DELIVERED, result
    assert result.detail == "answered, message played in full (2 s)"
    (call,) = twilio.calls.values()
    form = call["_form"]
    assert form["To"] == "+33170709901" and form["From"] == "+33170709900"
    assert form["MachineDetection"] == "DetectMessageEnd"
    assert form["Url"].endswith("/twiml") and form["StatusCallback"].endswith("/status")
    assert call["_events"] == ["initiated", "ringing", "answered", "completed"]
    assert twilio.media == [(200, "audio/wav", len(tone()))]
    assert result.provider_ref == call["sid"]
    # Duplicates and a late "ringing" were taken (2xx) and changed nothing.
    assert all(200 <= status < 300 for _, status in twilio.callback_log)
    kept = StoreProviderEvents(lambda: store).events("twilio", call["sid"])
    assert kept[0].status == "completed"


@pytest.mark.parametrize(("number", "options", "expected", "text"), [
    ("+33170709993", {}, DELIVERED, "answering machine: message left after the beep (2 s)"),
    ("+33170709994", {}, BUSY, "busy"),
    ("+33170709995", {}, NO_ANSWER, "no answer"),
    ("+33170709997", {}, NOT_IN_SERVICE, "the call could not be completed as dialled"),
    ("+33170709996", {}, PARTIAL, "answered, hung up after "),
    ("+33170709988", {"transfer": "+33170709911"}, DELIVERED,
     ": transferred to +33170709911"),
    ("+33170709901", {"welcome": "yes"}, DELIVERED,
     "answered, * pressed, message played in full (2 s)"),
    ("+33170709986", {"welcome": "yes"}, NO_ANSWER,
     "answered, but * was not pressed at the welcome prompt: message not played"),
    ("+33170709993", {"welcome": "yes"}, NO_ANSWER,
     "answering machine: * never pressed at the welcome prompt, message not left"),
    ("+33170709993", {"voicemail": "no"}, NO_ANSWER,
     "answering machine: hung up without leaving the message"),
    ("+33170709901", {"voicemail": "only"}, NO_ANSWER,
     "a person answered: the message is for voicemail only"),
    ("+33170709989", {}, NOT_FAX, "a fax machine answered"),
])
def test_twilio_outcomes(store: Store, twilio: FakeTwilio, number: str,
                         options: dict[str, str], expected: str, text: str) -> None:
    result = run_twilio(store, twilio, voice_request(number, options))
    assert result.result == expected, result
    assert text in (result.detail or result.error_text or ""), result
    if "transfer" in options:
        (call,) = twilio.calls.values()
        assert call["_dialled"] == options["transfer"]


def test_twilio_unsigned_and_forged_callbacks_get_403(store: Store, twilio: FakeTwilio) -> None:
    twilio.forge = True
    result = run_twilio(store, twilio, voice_request())
    assert result.result == DELIVERED
    refused = [s for w, s in twilio.callback_log if w in ("forged", "unsigned")]
    assert refused and set(refused) == {403}
    assert "busy" not in [s for _, s, _ in rows(store, "twilio")]


def test_twilio_signature_matches_the_documented_example() -> None:
    """Twilio's documented example (webhooks security page, also the helper libraries'
    tests): this URL, these parameters and auth token 12345."""
    from mailgw.dispatch.drivers.twilio import signature

    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature("12345", url, list(params.items())) == expected
    assert twilio_signature("12345", url, params) == expected


def test_twilio_429_and_5xx_on_create(store: Store, twilio: FakeTwilio) -> None:
    twilio.faults["send"] = ["429", "500"]
    assert run_twilio(store, twilio, voice_request()).result == DELIVERED
    assert len(twilio.calls) == 1


def test_twilio_create_timeout_is_a_provider_error(store: Store, twilio: FakeTwilio) -> None:
    twilio.faults["send"] = ["timeout"]
    result = run_twilio(store, twilio, voice_request(), timeout="1s")
    assert (result.result, result.retryable) == (PROVIDER_ERROR, True)
    assert "timed out" in (result.error_text or "")
    assert twilio.calls == {}


def test_twilio_polls_without_status_callbacks(store: Store, twilio: FakeTwilio) -> None:
    twilio.callbacks = False
    result = run_twilio(store, twilio, voice_request(), poll_interval="300ms")
    assert result.result == DELIVERED
    assert not any(w.startswith("status:") for w, _ in twilio.callback_log)


def test_twilio_respects_calls_per_second(store: Store, twilio: FakeTwilio) -> None:
    settings = twilio_settings(twilio, free_port(), calls_per_second=4)

    async def go() -> list[CallResult]:
        async with endpoint(settings, store) as driver:
            reqs = [CallRequest(delivery_id=i, attempt=1, channel="voice",
                                number=f"+3317070990{i}", idempotency_key=f"d{i}-a1",
                                document=tone(), sound_seconds=2.0) for i in range(1, 5)]
            return list(await asyncio.gather(*(driver.place_call(r) for r in reqs)))

    results = asyncio.run(go())
    assert [r.result for r in results] == [DELIVERED] * 4
    # 4 calls at 4 a second: sent 0.25 s apart (0.75 s from first to last). The fake server
    # sees arrivals, and a first request held up on a loaded machine shortens the first
    # interval (seen: 0.144, 0.25, 0.25): so at least two whole intervals from first to last.
    # Without the pacing all four arrive within a few milliseconds.
    times = sorted(twilio.created_at)
    assert times[-1] - times[0] >= 0.5, times


def test_twilio_cancel_ends_the_call(store: Store, twilio: FakeTwilio) -> None:
    settings = twilio_settings(twilio, free_port())

    async def go() -> None:
        async with endpoint(settings, store) as driver:
            task = asyncio.create_task(driver.place_call(voice_request("+33170709998")))
            await asyncio.to_thread(wait_until, lambda: any(
                c["status"] == "ringing" for c in twilio.calls.values()), 10, "ringing")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(go())
    (call,) = twilio.calls.values()
    assert call["_hangup"] == "canceled"
    wait_until(lambda: call["status"] == "canceled", what="the fake to end the call")


def test_twilio_media_url_is_signed(store: Store, twilio: FakeTwilio) -> None:
    port = free_port()
    settings = twilio_settings(twilio, port, media_ttl="1s")

    async def go() -> list[int]:
        async with endpoint(settings, store) as driver:
            driver.sounds[5] = tone()
            good = cloud.sign(driver.media_key, {"d": 5}, 60)
            expired = cloud.sign(driver.media_key, {"d": 5}, -1)
            other_key = cloud.sign(driver.call_key, {"d": 5}, 60)
            out = []
            for token in (good, expired, other_key, good[:-2] + "xx"):
                out.append(await asyncio.to_thread(_get, port, f"/media/twilio/{token}"))
            return out

    assert asyncio.run(go()) == [200, 403, 403, 403]


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_credentials_never_in_check_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    token_file = tmp_path / "twilio-token"
    token_file.write_text("tok-SECRET-42\n")
    cfg = tmp_path / "mailgw.toml"
    cfg.write_text('[dispatch]\ndriver = "twilio"\n[http]\nlisten = "127.0.0.1:8089"\n'
                   '[drivers.twilio]\naccount_sid = "AC1"\nfrom_number = "+33170709900"\n'
                   'public_url = "https://gw.example.org"\n'
                   f'auth_token_file = "{token_file}"\n'
                   '[drivers.sinch]\nkey_secret = "sinch-SECRET-7"\n')
    settings = config.load(cfg, environ={})
    assert settings.drivers.twilio.secret() == "tok-SECRET-42"

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailgw", "check-config", "--config",
                               str(cfg)], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin"})

    ok = check()
    assert ok.returncode == 0, ok.stderr
    cfg.write_text(cfg.read_text().replace('public_url = "https://gw.example.org"\n', "")
                   .replace('driver = "twilio"', 'driver = "sinch"'))
    bad = check()
    assert bad.returncode == 2
    assert "drivers.sinch.project_id" in bad.stderr
    for out in (ok, bad):
        assert "SECRET" not in out.stdout + out.stderr


# -- the whole path, and a callback taken by another process ----------------------------------

def _port_free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fax_mail_through_sinch(make_app: Any, sink: Any, sinch: FakeSinch) -> None:
    port = _port_free()
    sinch.duplicate = sinch.late_progress = True
    app = make_app(dispatch={"driver": "sinch"}, http={"listen": f"127.0.0.1:{port}"},
                   drivers={"sinch": {"api_url": sinch.url, "project_id": sinch.project,
                                      "key_id": sinch.key_id, "key_secret": sinch.key_secret,
                                      "public_url": f"http://127.0.0.1:{port}",
                                      "callback_password": CALLBACK_PASSWORD,
                                      "poll_interval": "5s", "timeout": "2s"}})
    app.add_account()
    from tests.conftest import fax_message

    send(app.port, fax_message(f"{PASSWORD}:0170709901:REF-1", pdf(2)))
    notices = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                            what="the notice")
    notice = next(m for m in notices if m["X-Mailgw-Kind"] == "notice")
    assert notice["X-Mailgw-State"] == "delivered"
    with app.store.read() as s:
        (d,) = s.scalars(select(Delivery))
        assert (d.state, d.pages_sent) == ("delivered", 2)
        assert s.scalar(select(func.count()).select_from(ProviderEvent)
                        .where(ProviderEvent.status == "COMPLETED")) == 1


def test_voice_mail_through_twilio_callbacks_on_another_host(make_app: Any, sink: Any,
                                                            twilio: FakeTwilio) -> None:
    """Twilio calls back the host at public_url (app B, no dispatch role); the host that
    placed the call (app A) learns the outcome from the store."""
    port_a, port_b = _port_free(), _port_free()
    drivers = {"twilio": {"api_url": twilio.url, "account_sid": twilio.sid,
                          "auth_token": twilio.token, "from_number": "+33170709900",
                          "public_url": f"http://127.0.0.1:{port_b}", "poll_interval": "60s",
                          "timeout": "2s", "calls_per_second": 0}}
    a = make_app(dispatch={"driver": "twilio"}, http={"listen": f"127.0.0.1:{port_a}"},
                 drivers=drivers)
    from tests.conftest import RunningApp, make_settings

    b_settings = make_settings(a.settings.store.url, sink.port, dispatch={"driver": "twilio"},
                               http={"listen": f"127.0.0.1:{port_b}"}, drivers=drivers)
    b = RunningApp(b_settings, roles=("notify", "http")).start()
    try:
        a.add_account()
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"], msg["To"] = "alice@example.com", "voice@gw.example.org"
        msg["Subject"] = f"{PASSWORD}:0170709901::appel"
        msg["Message-ID"] = "<voice-twilio-1@example.com>"
        msg.set_content("Bonjour\n")
        msg.add_attachment(tone(), maintype="audio", subtype="wav", filename="message.wav")
        send(a.port, msg)
        notices = sink.wait_for(lambda ms: any(m["X-Mailgw-Kind"] == "notice" for m in ms),
                                timeout=40, what="the notice")
        notice = next(m for m in notices if m["X-Mailgw-Kind"] == "notice")
        assert notice["X-Mailgw-State"] == "delivered"
        assert twilio.media and twilio.media[0][0] == 200
        with a.store.read() as s:
            job = s.scalars(select(Job)).one()
            assert job.channel == "voice" and job.outcome == "delivered_all"
    finally:
        b.stop()
