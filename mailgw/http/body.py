"""A request body read whole, within a route's own size limit (413 beyond it).

The limit is the route's (a driver's `max_body`, an upload's size): a Content-Length over
it is refused before a byte of the body is read; a chunked body is counted as it comes.
The time the body may take is bounded for every route by mailgw.http.middleware.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response


async def read_body(request: Request, limit: int) -> bytes | Response:
    """The body, or the answer that refuses it (411 without a length, 413 over `limit`)."""
    too_big = PlainTextResponse(f"body over {limit} bytes\n", 413)
    if "chunked" not in request.headers.get("transfer-encoding", "").lower():
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return PlainTextResponse("Content-Length required\n", 411)
        if int(length) > limit:
            return too_big
    out = bytearray()
    try:
        async for chunk in request.stream():
            out += chunk
            if len(out) > limit:
                return too_big
    except ClientDisconnect:  # gone before the end of its body: nothing to hand on
        return PlainTextResponse("incomplete body\n", 400)
    return bytes(out)
