"""Provider callbacks: the HTTP listener's connection (mailgw.http.protocol on uvicorn's h11,
Starlette, mailgw.http.provider_routes) in front of the Sinch and Twilio webhook handlers,
and Sinch's body parser on its own.

The endpoint answers every request; an exception out of the ASGI application (uvicorn
would log it and answer 500) and one out of a handler (``callback_failed``, a 500, so the
provider sends it again and again) are both findings. `sinch.parse_callback` returns the fax
object or None. The provider writes nothing to the store here: the drivers' store calls
are replaced by in-memory ports that serialise what would be stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from starlette.applications import Starlette
from uvicorn.server import ServerState

from fuzz.targets import Finding
from mailgw.dispatch.drivers import cloud, sinch, twilio
from mailgw.dispatch.drivers.base import CallbackRequest, HttpReply
from mailgw.dispatch.drivers.cloud_http import basic_auth
from mailgw.dispatch.drivers.ports import Event, Ports
from mailgw.dispatch.drivers.sinch import SinchSettings
from mailgw.dispatch.drivers.twilio import TwilioSettings
from mailgw.http import provider_routes
from mailgw.http.server import HttpServer

ALLOWED: tuple[type[BaseException], ...] = ()
PUBLIC = "https://gw.example.org"
SECRET = "fuzz-secret"
CALLBACK_PASSWORD = "cb-pass"
# Token claims as the drivers sign them (the fuzzer cannot forge a token: these are the
# ones a real call carries).
CLAIMS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"d": 1},
    {"d": 1, "o": {"t": "+33170709901", "w": "1"}},
    {"d": 1, "o": {"v": "no"}},
    {"d": 1, "o": {"v": "only", "t": "+33170709901"}},
    {"d": 2},
    {"d": "1"},
    {"d": 1, "o": "x"},
)


class _Events:
    """ProviderEvents that keep nothing: each event is serialised as the store would."""

    def record(self, driver: str, ref: str, status: str, rank: int,
               payload: Mapping[str, Any]) -> bool:
        json.dumps({"ref": ref, "status": status, **payload}, default=str)
        return True

    def events(self, driver: str, ref: str) -> list[Event]:
        return []


class _Media:
    def sound(self, delivery_id: int) -> bytes | None:
        return b"RIFF\0\0\0\0WAVEfmt " if delivery_id == 1 else None


PORTS = Ports(events=_Events(), media=_Media())


class _Sinch(sinch.SinchDriver):
    """The real handler; a crash is kept for the harness."""

    crashes: list[BaseException]

    async def handle_callback(self, request: CallbackRequest) -> HttpReply:
        try:
            return await super().handle_callback(request)
        except Exception as exc:
            self.crashes.append(exc)
            raise


class _Twilio(twilio.TwilioDriver):
    crashes: list[BaseException]

    async def handle_callback(self, request: CallbackRequest) -> HttpReply:
        try:
            return await super().handle_callback(request)
        except Exception as exc:
            self.crashes.append(exc)
            raise

    async def handle_media(self, request: CallbackRequest) -> HttpReply:
        try:
            return await super().handle_media(request)
        except Exception as exc:
            self.crashes.append(exc)
            raise


class _Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sinch = _Sinch(SinchSettings(project_id="proj", key_id="key", key_secret=SECRET,
                                          public_url=PUBLIC,
                                          callback_password=CALLBACK_PASSWORD), PORTS)
        self.twilio = _Twilio(TwilioSettings(account_sid="AC" + "0" * 32, auth_token=SECRET,
                                             from_number="+33170709900", public_url=PUBLIC),
                              PORTS)
        self.app_errors: list[BaseException] = []
        routes = provider_routes.routes({"sinch": self.sinch, "twilio": self.twilio})
        self.http = HttpServer(_Catch(Starlette(routes=routes), self.app_errors))
        self.http.config.load()

    def token(self, name: str, kind: str, claims: dict[str, Any] | None) -> bytes:
        if claims is None:
            return b""
        key = (self.sinch.token_key if name == "sinch" else
               self.twilio.media_key if kind == "media" else self.twilio.call_key)
        return cloud.sign(key, claims, 3600).encode()

    def authenticate(self, name: str, request: bytes) -> bytes:
        """Add the credentials the provider would send, so the fuzzer gets past them."""
        head, _, body = request.partition(b"\r\n\r\n")
        line, sep, fields = head.partition(b"\r\n")
        if name == "sinch":
            header = f"Authorization: {basic_auth('mailgw', CALLBACK_PASSWORD)}"
        else:
            parts = line.decode("latin-1").split(" ")
            try:
                params = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                return request
            target = parts[1] if len(parts) > 1 else ""
            header = f"X-Twilio-Signature: {twilio.signature(SECRET, PUBLIC + target, params)}"
        rest = b"\r\n" + fields if sep else b""
        return line + b"\r\n" + header.encode("latin-1") + rest + b"\r\n\r\n" + body

    async def serve(self, request: bytes) -> None:
        """One connection of the listener, the socket replaced by an in-memory transport."""
        state = ServerState()
        proto = self.http.protocol(config=self.http.config, server_state=state,
                                   app_state={}, _loop=self.loop)
        transport = _Transport()
        proto.connection_made(transport)
        proto.data_received(request)
        proto.eof_received()
        if state.tasks:  # a complete request is answered at once
            await asyncio.wait(list(state.tasks), timeout=GRACE)
        # The client has sent all it will: a request still waiting for the rest of its body
        # (a short chunk, a Content-Length past the end) would wait for the listener's body
        # deadline (30 s, tested in test_http_stack). Close the connection as the client's
        # going away would; the request must then end, without an application error.
        proto.connection_lost(None)
        while state.tasks:
            await asyncio.wait(list(state.tasks))

    def run(self, data: bytes) -> None:
        flags, rest = data[0], data[1:]
        if flags & 0x80:  # Sinch's body parser alone: content type, newline, body
            ctype, _, body = rest.partition(b"\n")
            fax = sinch.parse_callback({"content-type": ctype.decode("latin-1")}, body)
            if fax is not None and not (isinstance(fax, dict) and fax.get("id")):
                raise Finding(f"parse_callback gave {fax!r}")
            return
        name = ("sinch", "twilio")[flags & 1]
        kind = "media" if flags & 2 else "callbacks"
        method = b"GET" if kind == "media" else b"POST"
        claims = CLAIMS[(flags >> 2) & 7]
        request = (method + f" /{kind}/{name}/".encode() + self.token(name, kind, claims) + rest)
        if flags & 0x40:
            request = self.authenticate(name, request)
        self.sinch.crashes, self.twilio.crashes = [], []
        self.app_errors.clear()
        self.loop.run_until_complete(self.serve(request))
        if self.app_errors:
            raise Finding(f"the HTTP application raised {self.app_errors[0]!r}"
                          ) from self.app_errors[0]
        crashes = self.sinch.crashes + self.twilio.crashes
        if crashes:
            raise Finding(f"{name} handler raised {crashes[0]!r}") from crashes[0]


GRACE = 0.3  # seconds a request has to be answered once the client's bytes are in


class _Transport(asyncio.Transport):
    """What the protocol writes is dropped; the connection is closed when it asks."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 80)
                }.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Catch:
    """The ASGI application, its exceptions kept (uvicorn would only log them)."""

    def __init__(self, app: Any, errors: list[BaseException]) -> None:
        self.app, self.errors = app, errors

    async def __call__(self, scope: Any, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.errors.append(exc)
            raise


_harness: _Harness | None = None


def one_input(data: bytes) -> None:
    """Byte 0: bit 7 = Sinch body parser alone; else bit 0 = Twilio, bit 1 = media, bits
    2-4 = signed token claims, bit 6 = valid provider credentials; the rest follows
    ``POST /callbacks/<name>/<token>`` (the rest of the target, version, headers, body)."""
    global _harness
    if not data:
        return
    if _harness is None:
        _harness = _Harness()
    _harness.run(data)


def _multipart(parts: list[tuple[str, str]]) -> tuple[str, bytes]:
    body = b"".join(f'--b0\r\nContent-Disposition: form-data; name="{name}"\r\n'
                    f"Content-Type: application/json\r\n\r\n{value}\r\n".encode()
                    for name, value in parts)
    return "multipart/form-data; boundary=b0", body + b"--b0--\r\n"


def seeds() -> Iterator[tuple[str, bytes]]:
    fax = {"id": "f1", "status": "COMPLETED", "direction": "OUTBOUND", "numberOfPages": 2,
           "pagesSentSuccessfully": 2, "createTime": "2025-01-01T10:00:00Z"}
    event = json.dumps({"event": "FAX_COMPLETED", "fax": fax}).encode()
    ctype, form = _multipart([("event", '"FAX_COMPLETED"'), ("fax", json.dumps(fax))])
    yield "sinch-json-parse", b"\x80application/json\n" + event
    yield "sinch-multipart-parse", b"\x80" + ctype.encode() + b"\n" + form
    for flags, what, body, head in (
        (0x44, "sinch-json", event, b"Content-Type: application/json\r\n"),
        (0x44, "sinch-multipart", form, f"Content-Type: {ctype}\r\n".encode()),
        (0x45, "twilio-status", b"CallSid=CA1&CallStatus=completed&CallDuration=12",
         b"Content-Type: application/x-www-form-urlencoded\r\n"),
        (0x49, "twilio-twiml", b"CallSid=CA1&AnsweredBy=machine_end_beep", b""),
        (0x51, "twilio-gather", b"CallSid=CA1&Digits=9", b""),
        (0x4D, "twilio-done", b"CallSid=CA1", b""),
    ):
        suffix = {"twilio-status": b"/status", "twilio-twiml": b"/twiml",
                  "twilio-gather": b"/gather?step=play", "twilio-done": b"/done"}.get(what, b"")
        yield what, (bytes((flags,)) + suffix + b" HTTP/1.1\r\nHost: gw\r\n" + head
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # h11 answers 400 to an HTTP/1.1 request without Host: each seed has one.
    yield "chunked", (b"\x44 HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + f"{len(event):x}\r\n".encode() + event + b"\r\n0\r\n\r\n")
    yield "twilio-media", b"\x07 HTTP/1.1\r\nHost: gw\r\n\r\n"
    auth = base64.b64encode(b"mailgw:guess").decode()
    yield "sinch-forged", (b"\x04 HTTP/1.1\r\nHost: gw\r\nAuthorization: Basic " + auth.encode()
                           + b"\r\nContent-Length: 2\r\n\r\n{}")
