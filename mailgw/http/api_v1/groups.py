"""/api/v1/groups: the account's contact groups (`@name` in a job's numbers), scope library.
Create, read, replace, delete, and import a CSV (`;` or `,`) or TXT list through the same
reader as an attached list (mailgw.recipients), with the counts of what was added, what
was already there, and what is not a number."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import groups
from mailgw.accounts.token_gate import TokenGate
from mailgw.accounts.tokens import Principal
from mailgw.http.api_v1.common import (
    ApiProblem,
    invalid,
    json_body,
    no_content,
    not_found,
    ok,
    operation,
    read_form,
)
from mailgw.store import api_v1 as rows
from mailgw.store import groups as group_rows

if TYPE_CHECKING:
    from mailgw.app import App

MAX_NUMBERS = 10_000  # in one JSON body; a file import takes up to limits.max_list_lines


def _report(name: str, r: groups.ImportReport) -> dict[str, Any]:
    return {"name": name, "added": r.added, "duplicates": r.duplicates,
            "invalid": list(r.invalid), "invalid_count": len(r.invalid)}


def _name(request: Request) -> str:
    return str(request.path_params["name"]).lstrip("@")


def _numbers(body: dict[str, Any]) -> list[str]:
    numbers = body.get("numbers", [])
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise invalid("numbers: expected a list of strings")
    if len(numbers) > MAX_NUMBERS:
        raise invalid(f"numbers: more than {MAX_NUMBERS} (import a file)")
    return numbers


def _list(app: App, principal: Principal) -> list[dict[str, Any]]:
    with app.store.read() as s:
        return [{"name": n, "members": c}
                for n, c in group_rows.counts(s, principal.account_id)]


async def list_groups(app: App, request: Request, principal: Principal) -> Response:
    return ok({"groups": await run_in_threadpool(_list, app, principal)})


def _write(app: App, principal: Principal, name: str, numbers: list[str], *,
           create: bool, replace: bool) -> dict[str, Any]:
    with app.store.tx() as s:
        try:
            found = group_rows.find(s, principal.account_id, name)
            if create and found is not None:
                raise ApiProblem(409, "exists", f"the group @{name} exists (PUT replaces it)")
            if replace and found is not None:
                group_rows.clear(s, found.id)
            report = groups.add_numbers(s, principal.account_email, name, numbers)
        except groups.GroupError as exc:
            raise invalid(str(exc)) from None
    return _report(name, report)


async def create_group(app: App, request: Request, principal: Principal) -> Response:
    body = await json_body(request, ("name", "numbers"))
    name = body.get("name")
    if not isinstance(name, str):
        raise invalid("name: expected a string")
    report = await run_in_threadpool(lambda: _write(app, principal, name.lstrip("@"),
                                                    _numbers(body), create=True,
                                                    replace=False))
    return ok(report, 201, {"Location": f"/api/v1/groups/{report['name']}"})


async def replace_group(app: App, request: Request, principal: Principal) -> Response:
    body = await json_body(request, ("numbers",))
    name = _name(request)
    return ok(await run_in_threadpool(lambda: _write(app, principal, name, _numbers(body),
                                                     create=False, replace=True)))


def _show(app: App, principal: Principal, name: str) -> dict[str, Any]:
    with app.store.read() as s:
        try:
            listed = groups.members(s, principal.account_email, name)
        except groups.GroupError:
            raise not_found(f"group @{name}") from None
    return {"name": name, "members": [{"number": n, "columns": c} for n, c in listed]}


async def show_group(app: App, request: Request, principal: Principal) -> Response:
    return ok(await run_in_threadpool(_show, app, principal, _name(request)))


def _delete(app: App, principal: Principal, name: str) -> bool:
    with app.store.tx() as s:
        return rows.delete_group(s, principal.account_id, name)


async def delete_group(app: App, request: Request, principal: Principal) -> Response:
    name = _name(request)
    if not await run_in_threadpool(_delete, app, principal, name):
        raise not_found(f"group @{name}")
    return no_content()


async def _upload(request: Request, most: int) -> tuple[bytes, str, bool]:
    """(the list's bytes, its file name, replace?) from a multipart form or a bare body."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    replace = request.query_params.get("replace", "false").lower() in ("1", "true", "yes")
    if ctype in ("text/csv", "text/plain"):
        data = await request.body()
        if len(data) > most:
            raise ApiProblem(413, "too-large", f"the list is over {most} bytes", code=94)
        return data, "list.txt" if ctype == "text/plain" else "list.csv", replace
    if ctype != "multipart/form-data":
        raise ApiProblem(415, "unsupported-media-type",
                         "expected text/csv, text/plain or multipart/form-data")
    form = await read_form(request, max_files=1, max_fields=10, max_part_size=10_000)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid("file: the list file is missing")
    data = await upload.read()
    if str(form.get("replace", "")).lower() in ("1", "true", "yes"):
        replace = True
    await form.close()
    if len(data) > most:
        raise ApiProblem(413, "too-large", f"the list is over {most} bytes", code=94)
    return data, upload.filename or "list.csv", replace


def _import(app: App, principal: Principal, name: str, data: bytes, filename: str,
            replace: bool) -> dict[str, Any]:
    with app.store.tx() as s:
        try:
            report = groups.import_file(s, principal.account_email, name, data, filename,
                                        replace=replace,
                                        max_lines=app.settings.limits.max_list_lines)
        except groups.GroupError as exc:
            raise invalid(str(exc)) from None
    return _report(name, report)


async def import_group(app: App, request: Request, principal: Principal) -> Response:
    name = _name(request)
    data, filename, replace = await _upload(request, app.settings.smtp.max_message_size)
    return ok(await run_in_threadpool(_import, app, principal, name, data, filename, replace))


def routes(app: App, gate: TokenGate) -> list[BaseRoute]:
    def op(handler: Any) -> Any:
        return operation(app, gate, "library", handler)

    return [
        Route("/api/v1/groups", op(list_groups), methods=["GET"]),
        Route("/api/v1/groups", op(create_group), methods=["POST"]),
        Route("/api/v1/groups/{name}", op(show_group), methods=["GET"]),
        Route("/api/v1/groups/{name}", op(replace_group), methods=["PUT"]),
        Route("/api/v1/groups/{name}", op(delete_group), methods=["DELETE"]),
        Route("/api/v1/groups/{name}/import", op(import_group), methods=["POST"]),
    ]
