"""RFC 9457 problem+json: the one writer every layer answers errors with (exception
handlers for routes, `send_problem` for raw ASGI middleware), and the OpenAPI entries
that document those bodies."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope, Send

from todo_api.date_range import RANGE_ERROR
from todo_api.db.constraints import database_problem
from todo_api.errors import AppError

log = logging.getLogger("todo_api.errors")

PROBLEM_JSON = "application/problem+json"
_TYPE_BASE = "https://todo-api.dev/problems/"


#: Problem `title`s and documented error descriptions: the names RFC 9110 (and RFC 6585
#: for 428, 429, 431, 511) gives each status. Kept here, not taken from `http.HTTPStatus`,
#: whose phrases for 413, 414, 416 and 422 changed in Python 3.13: every Python this runs
#: on must answer and document the same words.
STATUS_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    421: "Misdirected Request",
    422: "Unprocessable Content",
    426: "Upgrade Required",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    511: "Network Authentication Required",
}


def status_title(status: int) -> str:
    """The problem `title` for an error status (RFC 9110's name; "Error" if it has none)."""
    return STATUS_TITLES.get(status, "Error")


class ValidationItem(BaseModel):
    """One reason a request was refused as invalid."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error response of this API is shaped."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": f"{_TYPE_BASE}task_not_found",
                "title": "Not Found",
                "status": 404,
                "detail": "No task with id 42 exists for this user.",
                "code": "task_not_found",
                "request_id": "3f1c0a8e5b7d4c21",
            }
        }
    )

    type: str = Field(description="A URI naming the problem type.")
    title: str = Field(description="The status's name in RFC 9110, e.g. `Not Found`.")
    status: int
    detail: str = Field(description="A human-readable sentence about this occurrence.")
    code: str = Field(description="A stable machine-readable code, e.g. `task_not_found`.")
    request_id: str | None = Field(default=None, description="Echo of `X-Request-ID`.")
    errors: list[ValidationItem] | None = Field(
        default=None, description="For 422: each invalid part of the request."
    )


def problem_body(
    status: int,
    code: str,
    detail: str,
    request_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise a problem document (used by handlers and by raw ASGI middleware)."""
    body: dict[str, Any] = {
        "type": _TYPE_BASE + code,
        "title": status_title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return orjson.dumps(body)


def problem_response(
    status: int,
    code: str,
    detail: str,
    request_id: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    return Response(
        problem_body(status, code, detail, request_id, extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def request_id_of(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


def validation_items(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors without `input`/`ctx`: an error must never echo the request back."""
    items = []
    for error in errors:
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        items.append(
            {"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
        )
    return items


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.status >= 500:
        log.warning(exc.code, extra={"request_id": request_id_of(request)})
    return problem_response(
        exc.status,
        exc.code,
        exc.detail,
        request_id_of(request),
        headers=exc.headers,
        extra=exc.extra,
    )


#: Validation error types that name the problem themselves: when every error of a 422 is
#: one of these, its `code` is that type instead of `validation_failed`.
SPECIFIC_VALIDATION_CODES = {
    RANGE_ERROR: "A date or instant is outside the years 1900 to 2999; see `errors`.",
    "recurrence_invalid": "The recurrence rule is not one this service can expand; see `errors`.",
    "timezone_unsupported": "The time zone is not one both this service and its database "
    "know; use an IANA name such as 'Europe/Paris'.",
}


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    items = validation_items(exc.errors())
    kinds = {item["type"] for item in items}
    if "json_invalid" in kinds:
        code, detail = "json_invalid", "The request body is not valid JSON."
    elif len(kinds) == 1 and (specific := kinds.pop()) in SPECIFIC_VALIDATION_CODES:
        code, detail = specific, SPECIFIC_VALIDATION_CODES[specific]
    else:
        code, detail = "validation_failed", "The request is not valid; see `errors`."
    return problem_response(422, code, detail, request_id_of(request), extra={"errors": items})


_HTTP_CODES = {
    404: ("not_found", "Nothing exists at this address."),
    405: ("method_not_allowed", "This method is not allowed on this address."),
}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (the router only names the first)."""
    scope = {"type": "http", "path": request.scope["path"], "method": "", "root_path": ""}
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if not route.methods:
            continue
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and isinstance(
        exc.__cause__, UnicodeDecodeError | RecursionError | ValueError
    ):
        # FastAPI reports a body it cannot decode (bad UTF-8, absurd nesting) as a bare
        # 400; to the client it is the same mistake as malformed JSON.
        return problem_response(
            422,
            "json_invalid",
            "The request body is not valid UTF-8 JSON.",
            request_id_of(request),
            extra={"errors": [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}]},
        )
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    code, detail = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
    return problem_response(exc.status_code, code, detail, request_id_of(request), headers=headers)


async def _database_error(request: Request, exc: Exception) -> Response:
    problem = database_problem(exc)
    if problem is None:
        raise exc  # a bug: the safety net logs it and answers a generic 500
    return await _app_error(request, problem)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every expected error into problem+json."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Known constraint violations become 4xx; anything else is re-raised (500).
    app.add_exception_handler(asyncpg.PostgresError, _database_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem+json bodies for these statuses."""
    return {
        status: {
            "model": Problem,
            "description": STATUS_TITLES[status],
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with a problem+json document straight from middleware."""
    body = problem_body(status, code, detail, scope.get("state", {}).get("request_id"))
    raw_headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
