"""The one error hierarchy: every error raised on purpose, by any layer, is an
`AppError` with a status, a stable `code` and a human `detail`. `http/problems.py`
renders them as RFC 9457 problem+json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
        self.headers: Mapping[str, str] | None = dict(headers or {})
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


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot serve this request now (lost, too slow, or every pooled
    connection busy); the client should retry shortly."""

    code = "database_unavailable"
    detail = "The database is not answering; retry shortly."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": "2"})
