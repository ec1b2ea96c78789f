"""The HTTP baseline: a bare Starlette endpoint on uvicorn that reads the request and commits
one row to SQLite (WAL, synchronous=FULL, as mailgw's store), nothing else.

    python bench/http_bare.py PORT DB_PATH

Used by bench/http_api.py; the same request a client sends to mailgw's /api/v1/jobs reaches it
(the multipart body is parsed, as Starlette parses it for mailgw), so the ratio prices what
mailgw adds: token check, the decision, the page count, the job and its delivery.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS job (id INTEGER PRIMARY KEY, ref TEXT, size INT)")
    lock = threading.Lock()

    def commit(ref: str, size: int) -> int:
        with lock:
            db.execute("BEGIN IMMEDIATE")
            cur = db.execute("INSERT INTO job (ref, size) VALUES (?, ?)", (ref, size))
            db.execute("COMMIT")
            return int(cur.lastrowid or 0)

    async def create(request: Request) -> JSONResponse:
        form = await request.form()
        size = 0
        for value in form.values():
            if hasattr(value, "read"):
                size += len(await value.read())
        job = await asyncio.to_thread(commit, str(form.get("ref") or ""), size)
        return JSONResponse({"id": job}, status_code=201)

    app = Starlette(routes=[Route("/api/v1/jobs", create, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
