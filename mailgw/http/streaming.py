"""A CSV report as an HTTP body that is read from the store while it is sent.

Why: a campaign's report has 100,000 lines; built whole it would cost tens of MB per
request. The read session opens first (so a missing job is still a plain 404) and stays
open until the last chunk is sent or the client goes away (the generator's close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from mailgw.store import Store

Opener = Callable[[Session], Iterator[str] | None]


def open_stream(store: Store, opener: Opener) -> Iterator[bytes] | None:
    """`opener`'s chunks, UTF-8, with the session held until they are all read; None (and
    the session closed) when `opener` finds nothing."""
    stack = ExitStack()
    try:
        chunks = opener(stack.enter_context(store.read()))
    except BaseException:
        stack.close()
        raise
    if chunks is None:
        stack.close()
        return None

    def body() -> Iterator[bytes]:
        with stack:
            for chunk in chunks:
                yield chunk.encode("utf-8")

    return body()


async def csv_response(store: Store, opener: Opener, filename: str,
                       headers: dict[str, str] | None = None) -> StreamingResponse | None:
    """A streamed `text/csv` attachment, or None when there is nothing to send (404)."""
    body = await run_in_threadpool(open_stream, store, opener)
    if body is None:
        return None
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})})
