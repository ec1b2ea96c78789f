"""What every /api/v1 operation shares: the bearer token and its scopes, RFC 9457 problem
details, JSON bodies and the opaque cursor of a listing.

An operation is a coroutine `(app, request, principal) -> Response` wrapped by `operation`,
which checks the token before anything else is read (401 without or with a wrong token,
403 for a scope the token lacks) and turns an `ApiProblem` into its problem document. An
unexpected error is logged and answered as a 500 problem, never as a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.codes import sentence

if TYPE_CHECKING:
    from mailgw.app import App

log = structlog.get_logger("mailgw.http.api_v1")

PROBLEM_TYPE = "urn:mailgw:problem:"  # + a slug, or + code-NN for a reply code
MAX_JSON = 1_000_000  # bytes of a JSON request body
TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
          404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type", 422: "Unprocessable Content",
          429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}

Operation = Callable[["App", Request, Principal], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class ApiProblem(Exception):
    """An answer that is a problem document (RFC 9457): status, a slug for its type, a
    sentence, and the reply code (80–96) when one applies."""

    def __init__(self, status: int, slug: str, detail: str, *, code: int | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.code = status, slug, detail, code
        self.headers = headers or {}
        self.extra = extra


def problem_response(p: ApiProblem) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + p.slug,
                            "title": TITLES.get(p.status, "Error"), "status": p.status,
                            "detail": p.detail}
    if p.code is not None:
        body["code"] = p.code
    body.update(p.extra)
    return Response(json.dumps(body, ensure_ascii=False), status_code=p.status,
                    headers=p.headers, media_type="application/problem+json")


def code_problem(code: int, lang: str, detail: str = "", status: int = 422) -> ApiProblem:
    """A refusal of intake's (82–96): its code, its sentence in the account's language."""
    text = sentence(code, lang or "en")
    return ApiProblem(status, f"code-{code}", f"{text} {detail}".strip() if detail else text,
                      code=code)


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, "not-found", f"no {what}")


def invalid(detail: str) -> ApiProblem:
    return ApiProblem(422, "invalid-request", detail)


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def no_content() -> Response:
    return Response(status_code=204)


def _bearer(request: Request) -> str | None:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    return presented if scheme.lower() == "bearer" and presented else None


async def authenticate(gate: TokenGate, request: Request) -> Principal:
    """The token's principal; 401 (with WWW-Authenticate) when it is missing or wrong, held
    as the gate says (wrong tokens are slowed per client address); 429 with Retry-After when
    the token is over its request rate."""
    presented = _bearer(request)
    client_ip = request.client.host if request.client else None
    principal, delay = await run_in_threadpool(gate.check, presented, client_ip)
    if principal is None:
        if delay > 0:
            await asyncio.sleep(delay)
        error = ', error="invalid_token"' if presented else ""
        raise ApiProblem(401, "unauthorized", "the token is not valid" if presented
                         else "a bearer token is required",
                         headers={"WWW-Authenticate": f'Bearer realm="mailgw"{error}'})
    wait = gate.throttle(principal)
    if wait > 0:
        raise ApiProblem(429, "too-many-requests", "too many requests for this token",
                         headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return principal


def operation(app: App, gate: TokenGate, scope: str, handler: Operation) -> Endpoint:
    """The Starlette endpoint for `handler`, behind the token and `scope`."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await authenticate(gate, request)
            if not principal.allows(scope):
                raise ApiProblem(403, "forbidden", f"the token lacks the scope {scope}")
            return await handler(app, request, principal)
        except ApiProblem as p:
            return problem_response(p)
        except Exception:  # noqa: BLE001 - the caller gets a problem, the log the traceback
            log.exception("api_error", path=request.url.path, method=request.method)
            return problem_response(ApiProblem(500, "internal", "internal error"))

    endpoint.__name__ = handler.__name__
    return endpoint


async def json_body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object with only the `allowed` members; 415 for another type, 400
    for what is not a JSON object, 422 for a member the operation does not know."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise ApiProblem(415, "unsupported-media-type", "expected application/json")
    raw = await request.body()
    if len(raw) > MAX_JSON:
        raise ApiProblem(413, "too-large", f"the JSON body is over {MAX_JSON} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(400, "bad-json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "bad-json", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(f"{unknown[0][:40]}: not a member of this body "
                      f"(one of {', '.join(allowed)})")
    return body


async def read_form(request: Request, *, max_files: int, max_fields: int,
                    max_part_size: int) -> FormData:
    """The multipart form; 400 for one that cannot be read (no boundary, a part too big)."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields,
                                  max_part_size=max_part_size)
    except (MultiPartException, HTTPException) as exc:
        reason = exc.detail if isinstance(exc, HTTPException) else exc.message
        raise ApiProblem(400, "bad-form", f"the multipart body cannot be read: {reason}") \
            from None


def text_field(body: dict[str, Any], name: str, *, most: int = 1000) -> str:
    """An optional string field ('' when absent or null); 422 for another type."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(f"{name}: expected a string")
    if len(value) > most:
        raise invalid(f"{name}: longer than {most} characters")
    return value


def query(request: Request, known: dict[str, int]) -> dict[str, str]:
    """The query's parameters, each at most its length; 422 for one that is longer."""
    out = {}
    for name, most in known.items():
        value = request.query_params.get(name)
        if value is not None:
            if len(value) > most:
                raise invalid(f"{name}: longer than {most} characters")
            out[name] = value
    return out


def int_path(request: Request, name: str, what: str) -> int:
    try:
        value = int(request.path_params[name])
    except (KeyError, ValueError):
        raise not_found(what) from None
    if value < 1 or value > 2**62:
        raise not_found(what)
    return value


# -- listings -----------------------------------------------------------------------------

def encode_cursor(before_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"b": before_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value = data["b"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ApiProblem(400, "bad-cursor", "the cursor is not one this API gave") from None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**62:
        raise ApiProblem(400, "bad-cursor", "the cursor is not one this API gave")
    return value


def parse_time(value: str, name: str, tz: str) -> datetime:
    """ISO 8601 (a date or a date and time); without an offset, in the account's zone."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(f"{name}: expected an ISO 8601 date or time, got {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed
