"""Pure ASGI middleware: request id and access log, security headers, error safety net,
body-size limit and authentication. Each one is a thin wrapper around `send`/`receive`."""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.auth.principal import RESERVED_USER_IDS, Principal, TokenError, bearer_token
from todo_api.auth.tokens import TokenVerifier
from todo_api.errors import AppError, PayloadTooLarge
from todo_api.events import tickets
from todo_api.http.problems import send_problem
from todo_api.http.ratelimit import limiter_of, send_rate_limited
from todo_api.http.response_state import RESPONSE, ResponseState, response_state
from todo_api.mcp.metadata import is_mcp_path, metadata_url
from todo_api.observability.logs import AccessLog
from todo_api.observability.redaction import hide_statement_parameters

access_log = AccessLog("todo_api.access")
error_log = logging.getLogger("todo_api.errors")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DOCS_PATHS = ("/docs", "/redoc")

_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_NO_STORE = (b"cache-control", b"no-store")

_Headers = tuple[tuple[bytes, bytes], ...]
SendProblem = Callable[[int, str, str, dict[str, str]], Awaitable[None]]


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def _request_id() -> str:
    # 128 random bits, like a UUID4, from the process's seeded generator: a request id
    # needs uniqueness, not secrecy, and this avoids a system call per request.
    return f"{random.getrandbits(128):032x}"


class RequestContextMiddleware:
    """Outermost layer: assigns the request id, adds security headers, logs one line.

    The log line carries the route template, never the raw path or query string:
    both can contain user ids, search text or other personal data. The caller appears
    only as `user_hash` (see `user_hash`), enough to follow one user's requests.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False, user_salt: bytes = b"") -> None:
        self.app = app
        self.hsts = hsts
        self.user_salt = user_salt
        docs = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
        api = (*docs, _CSP)
        #: (docs page?, HSTS?) -> the headers this layer sets, and their names (which
        #: replace any the app set). Built once.
        self._variants: dict[tuple[bool, bool], tuple[_Headers, frozenset[bytes]]] = {}
        for is_docs in (False, True):
            for strict in (False, True):
                headers = (*(docs if is_docs else api), *((_HSTS,) if strict else ()))
                names = frozenset((b"x-request-id", *(name for name, _ in headers)))
                self._variants[is_docs, strict] = (headers, names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
                break
        request_id = request_id or _request_id()
        state = _state(scope)
        state["request_id"] = request_id
        response = state[RESPONSE] = ResponseState()
        path: str = scope["path"]
        ours, replaced = self._variants[
            path.startswith(_DOCS_PATHS), self.hsts and scope.get("scheme") == "https"
        ]
        ours = ((b"x-request-id", request_id.encode("latin-1")), *ours)
        api = path.startswith("/api")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw header tuples: cheaper than `MutableHeaders`, with the same result
                # (ours replace any the app set; Cache-Control only fills a gap).
                headers = [h for h in response.start(message) if h[0] not in replaced]
                if api and not any(h[0] == b"cache-control" for h in headers):
                    headers.append(_NO_STORE)
                headers.extend(ours)
                ignored = state.get(IGNORED_PARAMS)
                if ignored:
                    headers.append((b"ignored-query-params", _shown(ignored).encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            principal = state.get("principal")
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            metrics = getattr(scope["app"].state, "metrics", None)
            if metrics is not None:
                metrics.observe(scope["method"], template, response.status, elapsed)
            access_log.info(
                "request",
                {
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": template,
                    "status": response.status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user_hash": user_hash(principal.user_id, self.user_salt)
                    if isinstance(principal, Principal)
                    else None,
                    **(
                        {"ignored_params": _shown(state[IGNORED_PARAMS])}
                        if IGNORED_PARAMS in state
                        else {}
                    ),
                },
            )


def _shown(names: list[str]) -> str:
    """Ignored parameter names for a header or a log line: at most 20, each printable
    ASCII without commas (others as `?`)."""
    shown = [name if _SHOWN_NAME.fullmatch(name) else "?" for name in names[:20]]
    return ", ".join(shown) + (", ..." if len(names) > 20 else "")


@functools.lru_cache(maxsize=4096)
def user_hash(user_id: str, salt: bytes) -> str:
    """A stable pseudonym for a user in logs: 16 hex digits of SHA-256(salt, user id).

    Never log the raw id (often an email-like or guessable value); with a per-deployment
    salt the pseudonym cannot be reversed by hashing candidate ids.
    """
    return hashlib.sha256(salt + b"\x00" + user_id.encode()).hexdigest()[:16]


def route_template(scope: Scope) -> str:
    """The matched route's full template (`/api/{user_id}/tasks/{task_id}`), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "<unmatched>"
    if template.startswith("/api") or not scope["path"].startswith("/api"):
        return template
    # Routers are mounted under `/api/{user_id}` and under the short `/api` alias.
    if "user_id" in scope.get("path_params", {}):
        return "/api/{user_id}" + template
    return "/api" + template


class ErrorSafetyNetMiddleware:
    """Turns an unexpected exception into a generic 500 problem+json.

    It sits inside the CORS layer so a browser can read the error; the traceback
    goes to the log with the request id, never to the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response, tracked = response_state(scope, send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            # A database error's message lists the statement's parameters: task text.
            hide_statement_parameters(error)
            error_log.exception(
                "unhandled error", extra={"request_id": _state(scope).get("request_id")}
            )
            if response.started:
                raise
            await send_problem(
                scope,
                tracked,
                500,
                "internal_error",
                "The server failed to handle this request. Quote the request id when reporting it.",
            )


class BodyTooLarge(PayloadTooLarge, HTTPException):
    """Raised from `receive` when a body outgrows the limit (chunked bodies included).
    Also an `HTTPException`, which FastAPI lets through while it reads a body (any other
    error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        detail = f"The request body exceeds {limit} bytes."
        PayloadTooLarge.__init__(self, detail, code="body_too_large")
        HTTPException.__init__(self, 413, detail)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes`: at once from `Content-Length`, else while reading."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await send_problem(
                        scope,
                        send,
                        413 if value.isdigit() else 400,
                        "body_too_large" if value.isdigit() else "bad_content_length",
                        f"The request body exceeds {limit} bytes."
                        if value.isdigit()
                        else "The Content-Length header is not a number.",
                    )
                    return
                break
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        response, tracked = response_state(scope, send)
        try:
            await self.app(scope, limited_receive, tracked)
        except BodyTooLarge:
            if response.started:
                raise
            await send_problem(
                scope, tracked, 413, "body_too_large", f"The request body exceeds {limit} bytes."
            )


class AuthenticationMiddleware:
    """Verifies the bearer token of every `/api` and `/mcp` request before anything reads
    the body.

    A refused token is also counted against the client address's budget, so a flood of
    bad tokens turns into cheap 429s; a verified caller is counted by the rate-limit
    layer that follows, then `PathUserMiddleware` checks the path names them. The
    precedence is therefore 401 > 429 > 403 > 404/422.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        mcp = is_mcp_path(path)
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/") or mcp):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            # A CORS preflight carries no credentials; the CORS layer above answers it.
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            authorization = [v for k, v in scope["headers"] if k == b"authorization"]
            ticket = None if authorization else tickets.stream_ticket(scope)
            if ticket is not None:
                principal = await tickets.spend(state.database, state.ticket_codec, ticket)
            else:
                verifier: TokenVerifier = state.verifier
                principal = await verifier.verify(bearer_token(authorization))
        except TokenError as error:
            challenge = (
                f'Bearer error="invalid_token", error_description="{_quote(error.description)}"'
            )
            if error.code == "token_missing":
                challenge = 'Bearer realm="todo-api"'
            if mcp:
                # RFC 9728 §5.1: where an MCP client finds the authorization server.
                challenge += f', resource_metadata="{metadata_url(scope)}"'
            limiter = limiter_of(scope)
            decision = await limiter.hit_address(scope) if limiter is not None else None
            if decision is not None and not decision.allowed:
                await send_rate_limited(scope, send, decision)
                return
            headers = {"WWW-Authenticate": challenge, **(decision.headers() if decision else {})}
            await send_problem(scope, send, 401, error.code, error.description, headers)
            return
        except AppError as error:  # the database could not check a ticket
            await send_problem(
                scope, send, error.status, error.code, error.detail, dict(error.headers or {})
            )
            return
        _state(scope)["principal"] = principal
        await self.app(scope, receive, send)


#: Set in the request's state when it came by a short alias (`/api/tasks/...`).
ALIAS = "alias"
#: The query parameter names the route ignored (`deps.ContextRoute` sets them).
IGNORED_PARAMS = "ignored_params"
#: Names echoed in `Ignored-Query-Params`: short, printable, no list separator.
_SHOWN_NAME = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,64}")


class PathUserMiddleware:
    """`/api/{user_id}/...` must name the verified caller (or `me`), else 403; the short
    aliases (`/api/tasks/...`, `/api/lists/...`, ...) are `/api/me/...`, and a trailing
    slash is dropped.

    It runs after the rate-limit layer (a flood is 429 before it is 403) and before
    routing and validation (403 before 404/422). An alias is rewritten here, so every
    spelling reaches the one route of its endpoint (and a resource word can never be
    taken for a user id); `routes.spelled` writes URLs back in the request's spelling.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = _state(scope).get("principal") if scope["type"] == "http" else None
        if not isinstance(principal, Principal):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 5 and path.endswith("/"):
            # `/api/me/tasks/` is `/api/me/tasks`: served directly, never redirected.
            path = path.rstrip("/")
            scope = {**scope, "path": path}
        segments = path.split("/", 3)
        named = segments[2] if len(segments) >= 3 else ""
        if named in RESERVED_USER_IDS and named != "me":
            _state(scope)[ALIAS] = True
            scope = {**scope, "path": "/api/me/" + path[5:]}
        elif named and named != "me" and named != principal.user_id:
            await send_problem(
                scope,
                send,
                403,
                "user_mismatch",
                "The user id in the path is not the token's subject; use your own id or `me`.",
            )
            return
        await self.app(scope, receive, send)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")
