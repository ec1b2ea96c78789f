"""Contact groups (`@name` among a Subject's numbers): list, create, open, edit, delete,
and import a list (CSV with `;` or `,`, or TXT; UTF-8, or as Excel saves it: Windows-1252,
UTF-16 with its BOM) through the same reader as a mail's attached list
(mailgw.accounts.groups.import_file → mailgw.recipients.parse_list). An import or an edit
redirects to the group's page, which shows MediasFlow's counts once: added, duplicates,
invalid (with the invalid ones), carried by a signed cookie (mailgw.http.web.flash), so a
reload neither posts again nor shows them again. An edit keeps the list's columns of the
numbers that stay. Another account's group is not found (404), never forbidden."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mailgw.accounts import groups
from mailgw.codes import sentence
from mailgw.http.web import flash
from mailgw.http.web.pages import Web
from mailgw.http.web.sessions import Current
from mailgw.notify.messages import international
from mailgw.store import api_v1 as api_rows
from mailgw.store import groups as group_rows

SHOWN = 500  # members listed on a group's page; the count says how many there are
INVALID_SHOWN = 20
INVALID_CHARS = 40  # of each invalid line shown (the count says how many there are)
DONE = ("group_deleted",)


def _report(name: str, r: groups.ImportReport) -> dict[str, Any]:
    return {"name": name, "added": r.added, "duplicates": r.duplicates,
            "invalid": [bad[:INVALID_CHARS] for bad in r.invalid[:INVALID_SHOWN]],
            "invalid_count": len(r.invalid),
            "more": max(0, len(r.invalid) - INVALID_SHOWN)}


def _shown(data: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """A report read back from the flash cookie: for this group, with the right types."""
    if not data or data.get("name") != name:
        return None
    counts = ("added", "duplicates", "invalid_count", "more")
    invalid = data.get("invalid")
    if not all(isinstance(data.get(k), int) for k in counts) or not isinstance(
            invalid, list) or not all(isinstance(bad, str) for bad in invalid):
        return None
    return {k: data[k] for k in ("name", "invalid", *counts)}


def _numbers(form: FormData) -> list[str]:
    text = str(form.get("numbers", ""))
    return [n.strip() for n in text.replace(";", "\n").replace(",", "\n").splitlines()
            if n.strip()]


def routes(web: Web) -> list[BaseRoute]:
    async def listing(request: Request, me: Current, extra: dict[str, Any] | None = None,
                      status: int = 200) -> Response:
        found = await web.tx(lambda s: group_rows.counts(s, me.account_id))
        done = request.query_params.get("done", "")
        ctx = {"groups": found, "error": "", "why": "", "name": "", "numbers": "",
               "message": done if done in DONE else ""}
        return web.page(request, "contacts.html", me, ctx | (extra or {}), status=status)

    async def group_page(request: Request, me: Current, name: str) -> Response:
        def read(s: Session) -> list[tuple[str, dict[str, str]]] | None:
            try:
                return groups.members(s, me.email, name)
            except groups.GroupError:
                return None
        listed = await web.tx(read)
        if listed is None:
            return web.not_found(request, me)
        members = [{"number": international(n), "columns": cols} for n, cols in listed[:SHOWN]]
        columns = sorted({k for _n, cols in listed[:SHOWN] for k in cols})
        report = _shown(flash.take(request, me.csrf), name)
        ctx = {"name": name, "members": members, "count": len(listed), "columns": columns,
               "numbers": "\n".join(n for n, _c in listed), "report": report,
               "error": "", "why": "", "message": ""}
        response = web.page(request, "group.html", me, ctx)
        if flash.COOKIE in request.cookies:  # shown once (or not this group's: dropped)
            flash.clear(response, secure_flag=web.secure(request))
        return response

    def done(request: Request, me: Current, name: str, report: groups.ImportReport
             ) -> Response:
        """To the group's page (POST, then GET), which shows the counts once."""
        response = web.redirect(f"/contacts/{quote(name, safe='')}#report")
        shown = _report(name, report)
        while not flash.put(response, me.csrf, shown, secure_flag=web.secure(request)) \
                and shown["invalid"]:  # too big for a cookie: fewer invalid lines listed
            half = len(shown["invalid"]) // 2
            shown["more"] += len(shown["invalid"]) - half
            shown["invalid"] = shown["invalid"][:half]
        return response

    async def page(request: Request, me: Current) -> Response:
        return await listing(request, me)

    async def one(request: Request, me: Current) -> Response:
        return await group_page(request, me, request.path_params["name"])

    async def create(request: Request, me: Current, form: FormData) -> Response:
        name = str(form.get("name", "")).strip().lstrip("@")[:101]
        numbers = _numbers(form)
        back = {"name": name, "numbers": str(form.get("numbers", ""))[:20_000]}
        if not groups.valid_name(name):
            return await listing(request, me, back | {"error": "bad_group"}, status=400)

        def run(s: Session) -> groups.ImportReport | None:
            if group_rows.find(s, me.account_id, name) is not None:
                return None
            return groups.add_numbers(s, me.email, name, numbers)
        report = await web.tx(run)
        if report is None:
            return await listing(request, me, back | {"error": "group_exists"}, status=409)
        return done(request, me, name, report)

    async def edit(request: Request, me: Current, form: FormData) -> Response:
        name = request.path_params["name"]
        numbers = _numbers(form)

        def run(s: Session) -> groups.ImportReport | None:
            if group_rows.find(s, me.account_id, name) is None:
                return None
            return groups.replace_numbers(s, me.email, name, numbers)
        report = await web.tx(run)
        if report is None:
            return web.not_found(request, me)
        return done(request, me, name, report)

    async def remove(request: Request, me: Current, _form: FormData) -> Response:
        name = request.path_params["name"]
        if not await web.tx(lambda s: api_rows.delete_group(s, me.account_id, name)):
            return web.not_found(request, me)
        return web.redirect("/contacts?done=group_deleted")

    async def import_list(request: Request, me: Current, form: FormData) -> Response:
        name = str(form.get("name", "")).strip().lstrip("@")[:101]
        upload, replace = form.get("file"), bool(form.get("replace"))
        data = await upload.read() if isinstance(upload, UploadFile) else b""
        filename = (upload.filename if isinstance(upload, UploadFile) else "") or "list.csv"
        await form.close()
        if not groups.valid_name(name):
            return await listing(request, me, {"error": "bad_group", "name": name},
                                 status=400)
        if not data:
            return await listing(request, me, {"error": "bad_list", "name": name,
                                               "why": "the list is empty"}, status=400)
        most = web.settings.limits.max_list_lines

        def run(s: Session) -> groups.ImportReport | str:
            try:
                return groups.import_file(s, me.email, name, data, filename,
                                          replace=replace, max_lines=most)
            except groups.GroupError as exc:  # the reader's words, with 94 when too long
                too_long = "more than" in str(exc)
                return f"[94] {sentence(94, me.lang)}: {exc}" if too_long else str(exc)
        report = await web.tx(run)
        if isinstance(report, str):
            return await listing(request, me, {"error": "bad_list", "name": name,
                                               "why": report}, status=400)
        return done(request, me, name, report)

    return [Route("/contacts", web.signed_in(page)),
            Route("/contacts", web.posted(create), methods=["POST"]),
            Route("/contacts/import", web.posted(import_list, files=True), methods=["POST"]),
            Route("/contacts/{name}", web.signed_in(one)),
            Route("/contacts/{name}/edit", web.posted(edit), methods=["POST"]),
            Route("/contacts/{name}/delete", web.posted(remove), methods=["POST"])]
