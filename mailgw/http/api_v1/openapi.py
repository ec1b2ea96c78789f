"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json), written by hand from
the operations' own rules, and /api/docs: a page listing the operations, rendered on the
server from the same document (no script, no CDN)."""

from __future__ import annotations

import html
import json
from typing import Any

from mailgw.http.api_v1.schemas import (
    SCHEMAS,
    STR,
    Schema,
    json_response,
    problem_responses,
    problems,
    ref,
)

JSON_BODY = "application/json"
JOB_ID = {"name": "job_id", "in": "path", "required": True,
          "schema": {"type": "integer", "minimum": 1}}
GROUP = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^@?[\\w.\\-]{1,100}$"}}
REF = {"name": "ref", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"}}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "description": "the same key (per account) gives the same job and answer",
               "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                          "pattern": "^[\\x21-\\x7e]+$"}}


def _op(op_id: str, summary: str, scope: str, responses: dict[str, Any], *,
        params: list[Schema] | None = None, body: dict[str, Schema] | None = None,
        description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op_id, "summary": summary,
                           "description": (description + " " if description else "")
                           + f"Scope: `{scope}` (or `admin`).",
                           "security": [{"bearer": [scope]}], "responses": responses}
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = {"required": True,
                              "content": {ctype: {"schema": schema}
                                          for ctype, schema in body.items()}}
    return out


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


NO_CONTENT = {"204": {"description": "done"}}
LIST_PARAMS = [
    _query("state", {"enum": ["scheduled", "active", "done", "cancelled"]}, "the job's state"),
    _query("from", {"type": "string", "format": "date-time"},
           "created at or after (ISO 8601; without an offset, in the account's zone)"),
    _query("to", {"type": "string", "format": "date-time"}, "created before"),
    _query("ref", {"type": "string", "maxLength": 200}, "the job's ref"),
    _query("number", {"type": "string", "maxLength": 40}, "a number one delivery dialled"),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}, "at most (50)"),
    _query("cursor", {"type": "string", "maxLength": 200}, "`next_cursor` of the page before"),
]
CSV = {"description": "the CSV report (MediasFlow's columns, `;`, UTF-8 with a BOM)",
       "content": {"text/csv": {"schema": STR}}}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/jobs": {
        "post": _op("createJob", "Create a fax or voice job", "jobs:write", {
            "201": json_response(ref("Created"), "accepted (80) or deferred (81)",
                                 Location="the job"),
            "200": json_response(ref("Created"), "a preview: checked, nothing sent"),
            **problems(400, 402, 413, 415, 422, 503)},
            params=[IDEMPOTENCY],
            body={JSON_BODY: ref("NewJob"), "multipart/form-data": ref("NewJobForm")},
            description="Decided like a mail to the fax or voice address; a refusal is a "
                        "problem with the reply code (83 is 402, the others 422)."),
        "get": _op("listJobs", "List the account's jobs, newest first", "jobs:read", {
            "200": json_response(ref("JobList"), "a page of jobs"),
            **problems(400, 422)}, params=LIST_PARAMS),
    },
    "/api/v1/jobs/{job_id}": {
        "get": _op("getJob", "A job with its deliveries and attempts", "jobs:read", {
            "200": json_response(ref("Job"), "the job"), **problems(404)}, params=[JOB_ID]),
    },
    "/api/v1/jobs/{job_id}/cancel": {
        "post": _op("cancelJob", "Cancel what has not gone out", "jobs:write", {
            "200": json_response(ref("Cancelled"), "cancelled (calls in flight asked to stop)"),
            **problems(404, 409)}, params=[JOB_ID],
            description="409 with code 96 when every delivery is final."),
    },
    "/api/v1/jobs/{job_id}/retry": {
        "post": _op("retryJob", "Queue failed and expired deliveries again", "jobs:write", {
            "200": json_response(ref("Retried"), "queued again"),
            **problems(404, 409)}, params=[JOB_ID]),
    },
    "/api/v1/jobs/{job_id}/report.csv": {
        "get": _op("jobReport", "The job's CSV report", "jobs:read",
                   {"200": CSV, **problems(404)}, params=[JOB_ID]),
    },
    "/api/v1/account": {
        "get": _op("getAccount", "The account: credits and settings", "jobs:read", {
            "200": json_response(ref("Account"), "the account"), **problems(404)}),
        "patch": _op("updateAccount", "Change the account's settings", "admin", {
            "200": json_response(ref("Account"), "the account as changed"),
            **problems(400, 404, 415, 422)}, body={JSON_BODY: ref("AccountPatch")},
            description="null (or '') clears test_number, notice_address, send_window."),
    },
    "/api/v1/webhook": {
        "get": _op("getWebhook", "Where the signed webhook events go", "admin", {
            "200": json_response(ref("Webhook"), "the URL, and whether a secret is set"),
            **problems(404)}),
        "put": _op("setWebhook", "Set the webhook URL (a new secret, shown once)", "admin", {
            "200": json_response(ref("WebhookSecret"), "the URL and its new secret"),
            **problems(400, 404, 415, 422)}, body={JSON_BODY: ref("WebhookSet")}),
        "delete": _op("deleteWebhook", "Stop the webhook events", "admin",
                      {**NO_CONTENT, **problems(404)}),
    },
    "/api/v1/library": {
        "get": _op("listMessages", "The voice library", "library", {
            "200": json_response(ref("MessageList"), "the recorded messages"),
            **problems()}),
        "post": _op("uploadMessage", "Store (or replace) a recorded message", "library", {
            "201": json_response(ref("Message"), "stored", Location="the message"),
            **problems(400, 413, 415, 422, 503)},
            body={"multipart/form-data": ref("MessageUpload")},
            description="The sound is checked and converted as a mail's would be (90, 91, "
                        "93, 94 when refused)."),
    },
    "/api/v1/library/{ref}": {
        "delete": _op("deleteMessage", "Remove a recorded message", "library",
                      {**NO_CONTENT, **problems(404)}, params=[REF]),
    },
    "/api/v1/groups": {
        "get": _op("listGroups", "The contact groups", "library", {
            "200": json_response(ref("GroupList"), "each group and its size"),
            **problems()}),
        "post": _op("createGroup", "Create a group", "library", {
            "201": json_response(ref("ImportReport"), "created", Location="the group"),
            **problems(400, 409, 415, 422)}, body={JSON_BODY: ref("NewGroup")}),
    },
    "/api/v1/groups/{name}": {
        "get": _op("getGroup", "A group's members", "library", {
            "200": json_response(ref("Group"), "its members"), **problems(404)},
            params=[GROUP]),
        "put": _op("replaceGroup", "Replace a group's members (creates it)", "library", {
            "200": json_response(ref("ImportReport"), "what was added"),
            **problems(400, 415, 422)}, params=[GROUP], body={JSON_BODY: ref("GroupNumbers")}),
        "delete": _op("deleteGroup", "Remove a group", "library",
                      {**NO_CONTENT, **problems(404)}, params=[GROUP]),
    },
    "/api/v1/groups/{name}/import": {
        "post": _op("importGroup", "Import a CSV (`;` or `,`) or TXT list", "library", {
            "200": json_response(ref("ImportReport"), "added, duplicates, invalid numbers"),
            **problems(400, 413, 415, 422)},
            params=[GROUP, _query("replace", {"enum": ["true", "false"]},
                                  "replace the members instead of adding")],
            body={"multipart/form-data": ref("ListUpload"), "text/csv": STR,
                  "text/plain": STR}),
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailgw REST API", "version": "1",
                 "description": "Faxes and voice messages by HTTP, decided like mail. Errors "
                                "are RFC 9457 problem details with the reply code (80-96)."},
        "servers": [{"url": "/"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS, "responses": problem_responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "an API token (mailgw token add)"}}},
    }


DOCUMENT_BYTES = json.dumps(document(), ensure_ascii=False, indent=1).encode()


def docs_page() -> str:
    """/api/docs: each operation with its method, path, scope, parameters and answers."""
    e = html.escape
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<title>mailgw REST API</title><style>body{font:15px/1.5 sans-serif;max-width:"
             "60em;margin:2em auto;padding:0 1em}code{background:#f3f3f3;padding:0 .2em}"
             "h2{border-top:1px solid #ccc;padding-top:.6em}</style></head><body>",
             "<h1>mailgw REST API v1</h1><p>The machine-readable description: "
             "<a href=/api/v1/openapi.json>/api/v1/openapi.json</a> (OpenAPI 3.1). Every "
             "call takes <code>Authorization: Bearer &lt;token&gt;</code>; errors are "
             "<code>application/problem+json</code>.</p>"]
    for path, item in PATHS.items():
        for method, op in item.items():
            parts.append(f"<h2 id={e(op['operationId'])}><code>{method.upper()} {e(path)}"
                         f"</code></h2><p>{e(op['summary'])}. {e(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<p>Parameters: " + ", ".join(
                    f"<code>{e(p['name'])}</code> ({p['in']})" for p in params) + "</p>")
            if "requestBody" in op:
                parts.append("<p>Body: " + ", ".join(
                    f"<code>{e(t)}</code>" for t in op["requestBody"]["content"]) + "</p>")
            parts.append("<p>Answers: " + ", ".join(sorted(op["responses"])) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)
