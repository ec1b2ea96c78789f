"""The OpenAPI 3.1 pieces every path of /api/v1 shares: the component schemas (JSON Schema
2020-12, as 3.1 takes it) and helpers that write an operation's responses. Pure data; the
document is assembled in mailgw.http.api_v1.openapi."""

from __future__ import annotations

from typing import Any

from mailgw.http.api_v1.common import TITLES
from mailgw.vocab import CHANNELS, DELIVERY_STATES, JOB_STATES

Schema = dict[str, Any]

STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
TIME = {"type": ["string", "null"], "format": "date-time"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Schema], required: tuple[str, ...] | None = None, *,
        extra: bool = False) -> Schema:
    """An object; every property required unless `required` says which."""
    return {"type": "object", "properties": props,
            "required": list(props if required is None else required),
            "additionalProperties": extra}


def json_response(schema: Schema, description: str, **headers: str) -> Schema:
    out: Schema = {"description": description,
                   "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = {name: {"description": text, "schema": STR}
                          for name, text in headers.items()}
    return out


def problems(*statuses: int) -> dict[str, Schema]:
    """Problem responses: the given statuses plus 401, 403 and 429 every operation has."""
    return {str(st): {"$ref": f"#/components/responses/Problem{st}"}
            for st in sorted({*statuses, 401, 403, 429})}


def problem_responses() -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for status, title in TITLES.items():
        out[f"Problem{status}"] = {
            "description": title + " (RFC 9457 problem details)",
            "content": {"application/problem+json": {"schema": ref("Problem")}}}
    out["Problem401"]["headers"] = {"WWW-Authenticate": {"schema": STR}}
    out["Problem429"]["headers"] = {"Retry-After": {"schema": STR}}
    out["Problem503"]["headers"] = {"Retry-After": {"schema": STR}}
    return out


ATTEMPT = obj({"started_at": TIME, "ended_at": TIME, "result": {"type": ["string", "null"]},
               "pages_sent": {"type": ["integer", "null"]}, "csid": {"type": ["string", "null"]},
               "error_class": {"type": ["string", "null"]},
               "error_text": {"type": ["string", "null"]}})
DELIVERY = obj({"id": INT, "number": {"type": "string", "description": "E.164"},
                "state": {"enum": list(DELIVERY_STATES)},
                "pages_sent": {"type": ["integer", "null"]},
                "pages_total": {"type": ["integer", "null"]},
                "csid": {"type": ["string", "null"]},
                "attempts": {"type": "array", "items": ref("Attempt")}})
JOB = obj({"id": INT, "channel": {"enum": list(CHANNELS)}, "account": STR, "sender": STR,
           "message_id": {"type": ["string", "null"]}, "state": {"enum": list(JOB_STATES)},
           "outcome": STR, "created_at": TIME, "when": TIME,
           "ref": {"type": ["string", "null"]}, "comment": {"type": ["string", "null"]},
           "pages": {"type": ["integer", "null"]},
           "progress": obj({"final": INT, "total": INT}),
           "deliveries": {"type": "array", "items": ref("Delivery")}})
OPTIONS = obj({
    "quality": {"enum": ["normal", "high", "best"]},
    "cover": {"type": ["boolean", "string"]}, "header": {"type": ["boolean", "string"]},
    "preview": {"type": ["boolean", "string"], "description": "check and render, send nothing"},
    "test": {"type": ["boolean", "string"], "description": "send to the account's test number"},
    "transfer": {"type": "string", "maxLength": 200}, "welcome": {"type": ["boolean", "string"]},
    "callerid": {"type": "string", "maxLength": 200},
    "retries": {"type": ["integer", "string"]},
    "voicemail": {"enum": ["leave", "no", "only"]}}, ())
SUBJECT_TEXT = {"type": "string", "maxLength": 200, "pattern": "^[^:\\r\\n]*$"}
NEW_JOB = obj({
    "channel": {"enum": list(CHANNELS)},
    "numbers": {"type": "array", "maxItems": 1000, "items": SUBJECT_TEXT,
                "description": "numbers (national in the account's region, or +E.164) "
                               "and @group names"},
    "ref": SUBJECT_TEXT, "comment": {"type": "string", "maxLength": 1000,
                                     "pattern": "^[^\\r\\n]*$"},
    "send_at": {"type": ["string", "null"], "format": "date-time",
                "description": "a deferred send (ISO 8601); none: now"},
    "library_ref": {"type": "string", "maxLength": 40, "pattern": "^[^:\\r\\n]*$",
                    "description": "voice: the library message to play"},
    "options": ref("Options")}, ("channel", "numbers"))
NEW_JOB_FORM = {**NEW_JOB, "properties": {
    **{k: v for k, v in NEW_JOB["properties"].items() if k not in ("options", "numbers")},
    "numbers": {"type": "string", "description": "comma-separated; the field may repeat"},
    "files": {"type": "array", "items": {"type": "string", "contentMediaType":
                                         "application/octet-stream"},
              "description": "documents (PDF, TIFF, images, office files) or a sound"}},
    "additionalProperties": True}
CREATED = obj({"code": {"enum": [80, 81]}, "detail": STR,
               "job_ids": {"type": "array", "items": INT}, "job": nullable(ref("Job"))})
ACCOUNT = obj({"id": INT, "email": STR, "credits": {"type": ["integer", "null"]},
               "region": STR, "lang": STR, "tz": STR, "quality": STR, "cover": BOOL,
               "header_line": BOOL, "test_number": {"type": ["string", "null"]},
               "notice_address": {"type": ["string", "null"]},
               "send_window": {"type": ["string", "null"]},
               "senders": {"type": "array", "items": STR}})
ACCOUNT_PATCH = obj({
    "lang": {"enum": ["fr", "en", "ru"]}, "tz": STR, "region": STR,
    "quality": {"enum": ["normal", "high", "best"]}, "cover": BOOL, "header_line": BOOL,
    "test_number": {"type": ["string", "null"]}, "notice_address": {"type": ["string", "null"]},
    "send_window": {"type": ["string", "null"]}}, ())
MESSAGE = obj({"ref": STR, "duration": {"type": "number"}, "created_at": TIME,
               "source_name": {"type": ["string", "null"]}})
GROUP_NAME = {"type": "string", "pattern": "^@?[\\w.\\-]{1,100}$"}
REPORT = obj({"name": STR, "added": INT, "duplicates": INT,
              "invalid": {"type": "array", "items": STR}, "invalid_count": INT})
NUMBERS = {"type": "array", "maxItems": 10000, "items": {"type": "string"}}

SCHEMAS: dict[str, Schema] = {
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {"type": STR, "title": STR, "status": INT, "detail": STR,
                               "code": {"type": "integer", "minimum": 80, "maximum": 96}}},
    "Attempt": ATTEMPT, "Delivery": DELIVERY, "Job": JOB, "Options": OPTIONS,
    "NewJob": NEW_JOB, "NewJobForm": NEW_JOB_FORM, "Created": CREATED,
    "JobList": obj({"jobs": {"type": "array", "items": ref("Job")},
                    "next_cursor": {"type": ["string", "null"]}}),
    "Cancelled": obj({"cancelled": INT, "requested": INT, "untouched": INT, "job": ref("Job")}),
    "Retried": obj({"queued": INT, "job": ref("Job")}),
    "Account": ACCOUNT, "AccountPatch": ACCOUNT_PATCH,
    "Webhook": obj({"url": {"type": ["string", "null"]}, "secret_set": BOOL}),
    "WebhookSet": obj({"url": {"type": "string", "maxLength": 2000}}),
    "WebhookSecret": obj({"url": {"type": ["string", "null"]},
                          "secret": {"type": ["string", "null"],
                                     "description": "shown here only"}}),
    "Message": MESSAGE,
    "MessageList": obj({"messages": {"type": "array", "items": ref("Message")}}),
    "MessageUpload": obj({"ref": {"type": "string", "maxLength": 40},
                          "sound": {"type": "string", "contentMediaType":
                                    "application/octet-stream"}}),
    "GroupList": obj({"groups": {"type": "array", "items": obj({"name": STR,
                                                                "members": INT})}}),
    "Group": obj({"name": STR, "members": {"type": "array", "items": obj(
        {"number": STR, "columns": {"type": "object",
                                    "additionalProperties": {"type": "string"}}})}}),
    "NewGroup": obj({"name": GROUP_NAME, "numbers": NUMBERS}, ("name",)),
    "GroupNumbers": obj({"numbers": NUMBERS}, ()),
    "ImportReport": REPORT,
    "ListUpload": obj({"file": {"type": "string", "contentMediaType": "text/csv"},
                       "replace": {"type": "string", "enum": ["true", "false"]}}, ("file",)),
}
