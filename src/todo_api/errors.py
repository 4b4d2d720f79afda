"""One error hierarchy, rendered everywhere as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from todo_api.auth import RESERVED_USER_IDS
from todo_api.db import DatabaseUnavailable

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


class AppError(Exception):
    """Base of every error a service or middleware raises on purpose."""

    status: int = 400
    code: str = "bad_request"
    detail: str = "The request could not be processed."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.detail
        self.code = code or self.code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    detail = "A valid bearer token is required."


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    detail = "This token may not act on that path."


class NotFound(AppError):
    status = 404
    code = "not_found"
    detail = "Nothing exists at this address."


class Conflict(AppError):
    status = 409
    code = "conflict"


class Gone(AppError):
    status = 410
    code = "gone"


class PreconditionFailed(AppError):
    """`If-Match` named a version the object no longer has (the body carries `current`)."""

    status = 412
    code = "version_mismatch"
    detail = "The object has changed since the version in `If-Match`."


class PreconditionRequired(AppError):
    status = 428
    code = "precondition_required"
    detail = "This server requires `If-Match` on writes to existing objects."


class PayloadTooLarge(AppError):
    status = 413
    code = "body_too_large"
    detail = "The request body is larger than this server accepts."


class Unprocessable(AppError):
    status = 422
    code = "validation_failed"
    detail = "The request is not valid."


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    detail = "The service is temporarily unavailable; retry shortly."


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
    return problem_response(
        exc.status,
        exc.code,
        exc.detail,
        request_id_of(request),
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    items = validation_items(exc.errors())
    if any(item["type"] == "json_invalid" for item in items):
        code, detail = "json_invalid", "The request body is not valid JSON."
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
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        user_id = child.get("path_params", {}).get("user_id")
        if user_id in RESERVED_USER_IDS and user_id != "me":
            continue  # `/api/tasks` is not the profile of a user called "tasks"
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


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatabaseUnavailable)
    log.warning(exc.code, extra={"request_id": request_id_of(request)})
    return problem_response(
        503, exc.code, exc.detail, request_id_of(request), headers={"Retry-After": "2"}
    )


# --- database errors that stand for a client mistake -----------------------------------
#
# Constraint names are stable (see the naming convention in `models.py`). A violated
# composite foreign key means "that id does not exist for this user", whether it belongs
# to nobody or to someone else: the message never says which, nor echoes the id.

_ON_WRITE: dict[str, tuple[type[AppError], str, str]] = {
    "fk_tasks_user_id_list_id_lists": (
        Unprocessable,
        "list_not_found",
        "The list does not exist for this user.",
    ),
    "fk_tasks_user_id_parent_id_tasks": (
        Unprocessable,
        "parent_not_found",
        "The parent task does not exist for this user.",
    ),
    "fk_task_tags_user_id_task_id_tasks": (
        NotFound,
        "task_not_found",
        "The task does not exist for this user.",
    ),
    "fk_task_tags_user_id_tag_id_tags": (
        NotFound,
        "tag_not_found",
        "The tag does not exist for this user.",
    ),
    "ck_tasks_recurrence_due": (
        Unprocessable,
        "recurrence_needs_due",
        "A recurring task needs a due date; clear `recurrence` first.",
    ),
    "ck_tasks_parent_not_self": (
        Unprocessable,
        "parent_cycle",
        "A task cannot be its own parent.",
    ),
    "uq_tasks_user_id_list_id_position": (
        Conflict,
        "position_conflict",
        "Another change reordered this list at the same time; retry.",
    ),
    "uq_tags_user_id_name_key": (
        Conflict,
        "tag_conflict",
        "Another change created the same tag at the same time; retry.",
    ),
}
#: Violations reported when the referenced row is deleted while rows still point at it.
_ON_DELETE: dict[str, tuple[type[AppError], str, str]] = {
    "fk_tasks_user_id_list_id_lists": (
        Conflict,
        "list_not_empty",
        "The list still has tasks: delete them or move them elsewhere first.",
    ),
}
_INVALID_PARAMETER = "22023"
#: deadlock_detected, serialization_failure: the database aborted one of two concurrent
#: transactions; lock_not_available: a lock wait outlasted the `lock_timeout` an
#: idempotency-key claim sets for its transaction. The client's retry will succeed.
_RETRYABLE = {"40P01", "40001", "55P03"}


def database_problem(error: BaseException) -> AppError | None:
    """The clean client error a database error stands for, or None when it is a bug."""
    cause = getattr(getattr(error, "orig", None), "__cause__", None)
    if cause is None:
        return None
    message = str(getattr(cause, "message", "") or "")
    if getattr(cause, "sqlstate", None) in _RETRYABLE:
        return Conflict(
            "A concurrent change to the same data got in the way; retry the request.",
            code="concurrent_update",
        )
    if getattr(cause, "sqlstate", None) == _INVALID_PARAMETER and "time zone" in message:
        return Unprocessable(
            "The profile's time zone is not known to the database server.",
            code="timezone_unsupported",
        )
    constraint = getattr(cause, "constraint_name", None)
    if not isinstance(constraint, str):
        return None
    table = _ON_DELETE if message.startswith("update or delete") else _ON_WRITE
    known = table.get(constraint)
    if known is None:
        return None
    kind, code, detail = known
    return kind(detail, code=code)


async def _database_error(request: Request, exc: Exception) -> Response:
    problem = database_problem(exc)
    if problem is None:
        raise exc  # a bug: the safety net logs it and answers a generic 500
    return await _app_error(request, problem)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every expected error into problem+json."""
    app.add_exception_handler(DatabaseUnavailable, _database_unavailable)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Known constraint violations become 4xx; anything else is re-raised (500).
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)


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
