"""Local fakes of the Sinch Fax API v3 and Twilio Programmable Voice, on 127.0.0.1.

Each follows the published API closely enough for mailgw's drivers (docs/drivers-cloud.md
lists the documents): the same paths, fields, status words, error codes and callback
shapes, HTTP Basic on the REST API, Basic credentials from the callback URL (Sinch) and
X-Twilio-Signature on every request to the application (Twilio). The far end is chosen by
the number's last two digits, as the simulator does. Faults are asked for per test:

  fake.faults["send"] = ["429", "500", "timeout", "500-created"]  # one per request, in order
  fake.duplicate = True        # every callback twice
  fake.late_progress = True    # a stale "in progress" callback after the final one
  fake.callbacks = False       # no callback at all: the driver must poll
  fake.forge = True            # also a forged callback (bad credentials / signature)
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import io
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _case(number: str) -> int:
    return int(number[-2:]) if number[-2:].isdigit() else 0


class _Server:
    """A threaded HTTP server calling `route(handler)`; subclasses implement it."""

    def __init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _go(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.route(self, body)

            do_GET = do_POST = _go  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.callback_log: list[tuple[str, int]] = []  # (what, HTTP status we got back)
        self.duplicate = False
        self.late_progress = False
        self.callbacks = True
        self.forge = False
        self.step = 0.05  # seconds between the far end's events
        self.timeout_delay = 3.0
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        raise NotImplementedError

    def fault(self, kind: str) -> str | None:
        with self.lock:
            queue = self.faults.get(kind)
            return queue.pop(0) if queue else None

    @staticmethod
    def answer(h: BaseHTTPRequestHandler, status: int, data: Any = None,
               headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode() if data is not None else b""
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
            pass

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until the far end has done everything it started (late callbacks too)."""
        for worker in list(self.workers):
            worker.join(timeout)

    def later(self, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, daemon=True)
        self.workers.append(t)
        t.start()

    def post(self, url: str, body: bytes, headers: dict[str, str], what: str) -> tuple[int, bytes]:
        req = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        except OSError:
            status, data = 0, b""
        with self.lock:
            self.callback_log.append((what, status))
        return status, data


# -- Sinch ------------------------------------------------------------------------------------

SINCH_PAGES_DEFAULT = 3


class FakeSinch(_Server):
    def __init__(self, project: str = "proj-1", key_id: str = "key-1",
                 key_secret: str = "secret-1"):
        super().__init__()
        self.project, self.key_id, self.key_secret = project, key_id, key_secret
        self.faxes: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []  # the form of every fax created

    def _auth_ok(self, h: BaseHTTPRequestHandler) -> bool:
        good = "Basic " + base64.b64encode(f"{self.key_id}:{self.key_secret}".encode()).decode()
        return h.headers.get("Authorization") == good

    def route(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        path, _, query = h.path.partition("?")
        self.requests.append((h.command, path))
        base = f"/v3/projects/{self.project}/faxes"
        if not self._auth_ok(h):
            return self.answer(h, 401)
        if h.command == "POST" and path == base:
            return self._send(h, body)
        if h.command == "GET" and path == base:
            q = urllib.parse.parse_qs(query)
            to = q.get("to", [""])[0]
            faxes = [self._public(f) for f in self.faxes.values() if f["to"].startswith(to)]
            return self.answer(h, 200, {"faxes": faxes, "page": 1, "totalPages": 1,
                                        "pageSize": 100, "totalItems": len(faxes)})
        if h.command == "GET" and path.startswith(base + "/"):
            fault = self.fault("get")
            if fault == "429":
                return self.answer(h, 429, {"code": "429", "error": "Too Many Requests",
                                            "message": "Rate limit exceeded"})
            fax = self.faxes.get(path.rsplit("/", 1)[1])
            if fax is None:
                return self.answer(h, 404, {"code": "404", "error": "Not found",
                                            "message": "The resource is not found"})
            return self.answer(h, 200, self._public(fax))
        return self.answer(h, 404)

    @staticmethod
    def _public(fax: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in fax.items() if not k.startswith("_")}
        if "callbackUrl" in out:  # the API masks the credentials of a callback URL
            parts = urllib.parse.urlsplit(out["callbackUrl"])
            if parts.password:
                out["callbackUrl"] = out["callbackUrl"].replace(parts.password, "***")
        return out

    def _send(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        fault = self.fault("send")
        if fault == "429":
            return self.answer(h, 429, {"code": "429", "error": "Too Many Requests",
                                        "message": "Rate limit exceeded, please back off"},
                               {"Retry-After": "0"})
        if fault == "500":
            return self.answer(h, 500, {"code": "500", "error": "Internal service error",
                                        "message": "Most likely a temporary issue"})
        if fault == "timeout":
            time.sleep(self.timeout_delay)
            return self.answer(h, 500)
        ctype = h.headers.get("Content-Type", "")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        form: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            form[str(name)] = data if name == "file" else data.decode()
        if "to" not in form or not isinstance(form.get("file"), bytes):
            return self.answer(h, 400, {"code": "400", "error": "Bad Request",
                                        "message": "to and file are required"})
        if form.get("resolution", "FINE") not in ("FINE", "STANDARD"):  # Sinch's two values
            return self.answer(h, 400, {"code": "400", "error": "Bad Request",
                                        "message": "resolution must be FINE or STANDARD"})
        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(form["file"])).pages)
        labels = {k[7:-1]: v for k, v in form.items() if k.startswith("labels[")}
        fax = {"id": uuid.uuid4().hex[:26].upper(), "direction": "OUTBOUND",
               "to": form["to"], "from": form.get("from", "+15550000000"),
               "numberOfPages": pages, "status": "IN_PROGRESS", "createTime": _now(),
               "maxRetries": int(form.get("maxRetries", 3)), "retryCount": 0,
               "labels": labels, "projectId": self.project, "serviceId": "svc-1",
               "resolution": form.get("resolution", "FINE"),
               "pagesSentSuccessfully": 0, "_n": sum(1 for f in self.sent
                                                     if f["to"] == form["to"]) + 1}
        if form.get("callbackUrl"):
            fax["callbackUrl"] = form["callbackUrl"]
            fax["callbackUrlContentType"] = form.get("callbackUrlContentType",
                                                     "multipart/form-data")
            fax["_progress"] = form.get("inProgressNotifications") == "true"
        self.sent.append({k: v for k, v in form.items() if k != "file"})
        self.faxes[fax["id"]] = fax
        self.later(lambda: self._transmit(fax))
        if fault == "500-created":  # created, but the answer is lost
            return self.answer(h, 500, {"code": "500", "error": "Internal service error"})
        return self.answer(h, 200, self._public(fax))

    def _transmit(self, fax: dict[str, Any]) -> None:
        case, n, pages = _case(fax["to"]), fax["_n"], fax["numberOfPages"]
        time.sleep(self.step * (10 if case == 98 else 1))
        progress: list[dict[str, Any]] = []

        def page_done(k: int) -> None:
            fax["pagesSentSuccessfully"] = k
            progress.append(dict(fax))
            if fax.get("_progress"):
                self._callback(fax)

        def fail(kind: str, code: int, message: str) -> None:
            fax.update(status="FAILURE", errorType=kind, errorCode=code, errorMessage=message)

        if case == 94:
            fail("CALL_ERROR", 17, "Busy")
        elif case == 95:
            fail("CALL_ERROR", 16, "Ring Timeout")
        elif case == 97:
            fail("CALL_ERROR", 34, "Phone number not operational")
        elif case == 93:
            fail("FAX_ERROR", 132, "No fax tone detected")
        elif case == 96 or case == 92 and n == 1:
            page_done(1)
            fail("FAX_ERROR", 38, "The remote fax machine hung up before receiving fax")
        else:
            for k in range(1, pages + 1):
                time.sleep(self.step / 2)
                page_done(k)
            fax["status"] = "COMPLETED"
        fax["completedTime"] = _now()
        self._callback(fax)
        if self.duplicate:
            self._callback(fax)
        if self.late_progress and progress:
            self._callback(progress[0])
        elif self.late_progress:
            self._callback({**fax, "status": "IN_PROGRESS", "pagesSentSuccessfully": 0})

    def _callback(self, fax: dict[str, Any]) -> None:
        url = fax.get("callbackUrl")
        if not url or not self.callbacks:
            return
        parts = urllib.parse.urlsplit(url)
        headers = {}
        if parts.username is not None:
            creds = f"{urllib.parse.unquote(parts.username)}:" \
                    f"{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (
            f":{parts.port}" if parts.port else "")))
        event: dict[str, Any] = {"event": "FAX_COMPLETED", "eventTime": _now(),
                                 "fax": self._public(fax)}
        if fax.get("callbackUrlContentType") == "application/json":
            event["files"] = [{"file": base64.b64encode(b"%PDF-1.4 fake").decode(),
                               "fileType": "PDF"}]
            body = json.dumps(event).encode()
            headers["Content-Type"] = "application/json"
        else:
            boundary = uuid.uuid4().hex
            chunks = []
            for name, value, ctype in (("event", json.dumps(event["event"]), "application/json"),
                                       ("fax", json.dumps(event["fax"]), "application/json")):
                chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
                              f"\r\nContent-Type: {ctype}\r\n\r\n{value}\r\n".encode())
            chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                          f"filename=\"fax.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
                          .encode() + b"%PDF-1.4 fake\r\n")
            body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        self.post(bare, body, headers, f"{fax['status']}:{fax.get('pagesSentSuccessfully')}")
        if self.forge:
            forged = dict(headers, Authorization="Basic " + base64.b64encode(
                b"mailgw:guess").decode())
            self.post(bare, json.dumps({**event, "fax": {**event["fax"], "status": "FAILURE"}}
                                       ).encode(), forged, "forged")


    def incoming(self, url: str, *, to: str, sender: str = "+14155552222", pages: int = 2,
                 document: bytes | None = None, content_type: str = "multipart/form-data",
                 fax_id: str = "", status: str = "COMPLETED", **fax: Any) -> tuple[int, bytes]:
        """A fax someone sent to one of our Sinch numbers, as Sinch posts it to the fax
        service's incomingWebhookUrl: an INCOMING_FAX event (multipart/form-data with the PDF
        as the `file` part, or JSON with the PDF base64 in `file`), Basic credentials taken
        from the URL. Also kept in `faxes` as an INBOUND fax."""
        parts = urllib.parse.urlsplit(url)
        headers = {}
        if parts.username is not None:
            creds = f"{urllib.parse.unquote(parts.username)}:" \
                    f"{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        bare = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname + (
            f":{parts.port}" if parts.port else "")))
        record = {"id": fax_id or uuid.uuid4().hex[:26].upper(), "direction": "INBOUND",
                  "from": sender, "to": to, "numberOfPages": pages, "status": status,
                  "price": {"amount": "0.00", "currencyCode": "USD"},
                  "createTime": "2026-12-07T14:29:00Z", "completedTime": "2026-12-07T14:30:15Z",
                  "projectId": self.project, "serviceId": "svc-1", **fax}
        self.faxes[record["id"]] = record
        event = {"event": "INCOMING_FAX", "eventTime": record["completedTime"], "fax": record}
        if content_type == "application/json":
            if document is not None:
                event.update(file=base64.b64encode(document).decode(), fileType="PDF")
            body = json.dumps(event).encode()
            headers["Content-Type"] = "application/json"
        else:
            boundary = uuid.uuid4().hex
            chunks = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"
                      f"Content-Type: application/json\r\n\r\n{json.dumps(value)}\r\n".encode()
                      for name, value in (("event", event["event"]),
                                          ("eventTime", event["eventTime"]), ("fax", record))]
            if document is not None:
                chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                              f"filename=\"{record['id']}.pdf\"\r\nContent-Type: "
                              "application/pdf\r\n\r\n".encode() + document + b"\r\n")
            body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        return self.post(bare, body, headers, f"incoming:{record['id']}")


# -- Twilio ----------------------------------------------------------------------------------

def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """As Twilio documents it: the full URL, then each POST parameter's name and value,
    sorted by name; HMAC-SHA1 keyed with the auth token; base64."""
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
                            ).decode()


class FakeTwilio(_Server):
    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "tok-1"):
        super().__init__()
        self.sid, self.token = account_sid, auth_token
        self.calls: dict[str, dict[str, Any]] = {}
        self.created_at: list[float] = []  # monotonic time of each call creation
        self.media: list[tuple[int, str, int]] = []  # (status, content type, bytes)
        self.twiml: list[str] = []
        self.digits: dict[str, str] = {}  # per case: what the callee presses

    def route(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        path = h.path.partition("?")[0]
        self.requests.append((h.command, path))
        good = "Basic " + base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if h.headers.get("Authorization") != good:
            return self.answer(h, 401, {"code": 20003, "message": "Authenticate",
                                        "status": 401})
        base = f"/2010-04-01/Accounts/{self.sid}/Calls"
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if h.command == "POST" and path == base + ".json":
            return self._create(h, body)
        if path.startswith(base + "/") and path.endswith(".json"):
            call = self.calls.get(path[len(base) + 1:-5])
            if call is None:
                return self.answer(h, 404, {"code": 20404, "message": "not found",
                                            "status": 404})
            if h.command == "POST" and form.get("Status") in ("canceled", "completed"):
                call["_hangup"] = form["Status"]
            return self.answer(h, 200, self._public(call))
        return self.answer(h, 404)

    @staticmethod
    def _public(call: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in call.items() if not k.startswith("_")}

    def _create(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        fault = self.fault("send")
        if fault == "429":
            return self.answer(h, 429, {"code": 20429, "message": "Too Many Requests",
                                        "status": 429})
        if fault == "500":
            return self.answer(h, 500, {"code": 20500, "message": "Internal Server Error",
                                        "status": 500})
        if fault == "timeout":
            time.sleep(self.timeout_delay)
            return self.answer(h, 500)
        pairs = urllib.parse.parse_qsl(body.decode())
        form = dict(pairs)
        events = [v for k, v in pairs if k == "StatusCallbackEvent"]
        for key in ("To", "From"):
            if not form.get(key):
                return self.answer(h, 400, {"code": 21201, "message": f"No '{key}' number",
                                            "status": 400})
        if not (form.get("Url") or form.get("Twiml")):
            return self.answer(h, 400, {"code": 21205, "message": "Url parameter is required",
                                        "status": 400})
        self.created_at.append(time.monotonic())
        call: dict[str, Any] = {
                "sid": "CA" + uuid.uuid4().hex, "account_sid": self.sid, "to": form["To"],
                "from": form["From"], "status": "queued", "direction": "outbound-api",
                "duration": None, "answered_by": None, "api_version": "2010-04-01",
                "_form": form, "_events": events, "_hangup": None,
                "_n": sum(1 for c in self.calls.values() if c["to"] == form["To"]) + 1}
        self.calls[call["sid"]] = call
        self.later(lambda: self._run(call))
        return self.answer(h, 201, self._public(call))

    # The far end: Twilio's callback order (initiated, ringing, answered, completed).

    def _signed_post(self, url: str, params: dict[str, str], what: str) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": twilio_signature(self.token, url, params)}
        return self.post(url, urllib.parse.urlencode(params).encode(), headers, what)

    def _status(self, call: dict[str, Any], status: str, event: str, seq: list[int]) -> None:
        call["status"] = status
        form = call["_form"]
        if not self.callbacks or not form.get("StatusCallback"):
            return
        if event not in call["_events"] and event != "completed":
            return
        params = {"CallSid": call["sid"], "AccountSid": self.sid, "From": call["from"],
                  "To": call["to"], "CallStatus": status, "ApiVersion": "2010-04-01",
                  "Direction": "outbound-api", "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(seq[0]), "Timestamp": _now()}
        if call.get("answered_by"):
            params["AnsweredBy"] = call["answered_by"]
        if status in ("completed", "busy", "no-answer", "failed", "canceled"):
            params["CallDuration"] = str(call.get("duration") or 0)
        seq[0] += 1
        self._signed_post(form["StatusCallback"], params, f"status:{status}")
        if self.duplicate:
            self._signed_post(form["StatusCallback"], params, f"status:{status}")
        if self.forge:
            bad = {**params, "CallStatus": "busy"}
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": twilio_signature("wrong", form["StatusCallback"],
                                                              bad)}
            self.post(form["StatusCallback"], urllib.parse.urlencode(bad).encode(), headers,
                      "forged")
            self.post(form["StatusCallback"], urllib.parse.urlencode(bad).encode(),
                      {"Content-Type": "application/x-www-form-urlencoded"}, "unsigned")

    def _run(self, call: dict[str, Any]) -> None:
        case, seq = _case(call["to"]), [0]
        started = time.monotonic()
        self._status(call, "initiated", "initiated", seq)
        time.sleep(self.step)
        if case == 97:
            return self._end(call, "failed", seq, started)
        self._status(call, "ringing", "ringing", seq)
        ring_until = time.monotonic() + self.step * (40 if case == 98 else 1)
        while time.monotonic() < ring_until:
            if call["_hangup"]:
                return self._end(call, "canceled", seq, started)
            time.sleep(0.01)
        if case == 94:
            return self._end(call, "busy", seq, started)
        if case == 95:
            return self._end(call, "no-answer", seq, started)
        if call["_form"].get("MachineDetection"):
            call["answered_by"] = {93: "machine_end_beep", 89: "fax"}.get(case, "human")
        self._status(call, "in-progress", "answered", seq)
        self._converse(call, case)
        if self.late_progress:
            self._end(call, "completed", seq, started)
            self._status(call, "ringing", "ringing", seq)  # a late, stale one
            return None
        return self._end(call, "completed", seq, started)

    def _end(self, call: dict[str, Any], status: str, seq: list[int], started: float) -> None:
        call["duration"] = max(1, round(time.monotonic() - started))
        self._status(call, status, "completed", seq)

    def _fetch(self, call: dict[str, Any], url: str, extra: dict[str, str]) -> ET.Element | None:
        params = {"CallSid": call["sid"], "AccountSid": self.sid, "From": call["from"],
                  "To": call["to"], "CallStatus": "in-progress", "Direction": "outbound-api",
                  "ApiVersion": "2010-04-01", **extra}
        if call.get("answered_by"):
            params["AnsweredBy"] = call["answered_by"]
        status, body = self._signed_post(url, params, "twiml")
        if status != 200:
            return None
        self.twiml.append(body.decode())
        return ET.fromstring(body)

    def _converse(self, call: dict[str, Any], case: int) -> None:
        """Run the TwiML as Twilio would: Say, Play (fetching the media), Gather, Redirect,
        Dial, Hangup. Case 96 hangs up during <Play>, 88 presses 9 during it; a person
        presses * at a welcome prompt (an answering machine never does)."""
        doc = self._fetch(call, call["_form"]["Url"], {})
        hops = 0
        while doc is not None and hops < 10 and not call["_hangup"]:
            hops += 1
            nxt: ET.Element | None = None
            for verb in doc:
                if call["_hangup"]:
                    return
                if verb.tag == "Hangup":
                    return
                if verb.tag == "Redirect":
                    nxt = self._fetch(call, (verb.text or "").strip(), {})
                    break
                if verb.tag == "Dial":
                    call["_dialled"] = (verb.text or "").strip()
                    time.sleep(self.step)
                    return
                if verb.tag == "Play":
                    if not self._play(call, verb, case):
                        return
                if verb.tag == "Gather":
                    pressed = None
                    for child in verb:
                        if child.tag == "Play":
                            if not self._play(call, child, case, gather=True):
                                if case == 88:
                                    pressed = "9"
                                    break
                                return
                        elif child.tag == "Say" and case not in (86, 93):
                            pressed = "*"
                    if pressed:
                        nxt = self._fetch(call, verb.attrib["action"], {"Digits": pressed})
                        break
            else:
                return
            doc = nxt

    def _play(self, call: dict[str, Any], verb: ET.Element, case: int,
              gather: bool = False) -> bool:
        """Fetch and 'play' a sound; False when the callee stops listening midway."""
        url = (verb.text or "").strip()
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                data = resp.read()
                self.media.append((resp.status, resp.headers.get("Content-Type", ""),
                                   len(data)))
        except urllib.error.HTTPError as exc:
            self.media.append((exc.code, "", 0))
            return False
        time.sleep(self.step)
        if case == 96 or (case == 88 and gather):
            return False
        return True
