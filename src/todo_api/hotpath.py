"""The hot path: the busiest task requests, answered without FastAPI's routing and
dependency resolution but by the same services and with the same responses.

Resolving a route and its dependencies costs FastAPI more CPU than the request's own
work on a get-one or a first list page (see bench/README.md). This innermost layer
takes the five requests a todo client sends most — list, get one, create, update,
complete — when they come in their plainest well-formed shape, and runs them the way
the route functions in `routes/tasks.py` do: the principal verified by the middleware,
one transaction opened as that user, the service call, the same response helpers. The
transaction is held on the driver connection (`Database.driver_session`), which also
keeps its pooled connection for the next such request.

Anything else continues to FastAPI untouched, which then answers it (errors included)
exactly as it always has: the `/api` alias without a user segment, a path or query value
that is not in its plainest form, a parameter this layer does not know, a conditional
header (`If-Match`, `If-None-Match`), an `Idempotency-Key`, a body that is not JSON or
does not validate (the body is handed on as it was read), and every write when
REQUIRE_IF_MATCH is on. `tests/test_hotpath.py` holds both paths to the same answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.auth import RESERVED_USER_IDS, Principal
from todo_api.db import Database
from todo_api.preconditions import etag
from todo_api.responses import task_response
from todo_api.routes import tasks as tasks_routes
from todo_api.schemas.common import MAX_ID
from todo_api.schemas.tasks import (
    DEFAULT_ORDER,
    SortOrder,
    TaskCreate,
    TaskSort,
    TaskStatus,
    TaskUpdate,
)
from todo_api.services import task_writes
from todo_api.services import tasks as service
from todo_api.timeouts import COMMITTING

#: Headers that make a request conditional or idempotent: FastAPI's routes handle those.
_DEFERRED_HEADERS = frozenset((b"if-match", b"if-none-match", b"idempotency-key"))
_STATUSES = {member.value: member for member in TaskStatus}
_SORTS = {member.value: member for member in TaskSort}
_ORDERS = {member.value: member for member in SortOrder}
_MAX_PAGE = 200
_DEFAULT_PAGE = 50
_MAX_CURSOR = 1024
_NO_FILTERS = service.TaskFilters()


def _task_id(segment: str) -> int:
    """`segment` as a task id when written plainly (`42`, not `042` or `+42`), else 0."""
    if not segment.isdigit() or not segment.isascii() or segment[0] == "0" or len(segment) > 19:
        return 0
    value = int(segment)
    return value if value <= MAX_ID else 0


def _plain_query(raw: bytes) -> dict[str, str] | None:
    """The query as a dict when every pair is `name=value` with nothing to decode."""
    if not raw:
        return {}
    if b"%" in raw or b"+" in raw:
        return None
    params: dict[str, str] = {}
    for pair in raw.decode("latin-1").split("&"):
        name, sep, value = pair.partition("=")
        if not sep or not value or name in params:
            return None
        params[name] = value
    return params


def _list_query(raw: bytes) -> service.ListQuery | None:
    """The list request's parameters, when they are only these five in valid forms."""
    params = _plain_query(raw)
    if params is None:
        return None
    status = _STATUSES.get(params.pop("status", "all"))
    sort = _SORTS.get(params.pop("sort", "created"))
    order_text = params.pop("order", None)
    limit_text = params.pop("limit", None)
    cursor = params.pop("cursor", None)
    if params or status is None or sort is None:
        return None
    order = DEFAULT_ORDER[sort] if order_text is None else _ORDERS.get(order_text)
    if order is None:
        return None
    limit = _DEFAULT_PAGE
    if limit_text is not None:
        if not limit_text.isdigit() or not limit_text.isascii() or limit_text[0] == "0":
            return None
        if len(limit_text) > 3 or int(limit_text) > _MAX_PAGE:
            return None
        limit = int(limit_text)
    if cursor is not None and len(cursor) > _MAX_CURSOR:
        return None
    return service.ListQuery(status, sort, order, limit, cursor, _NO_FILTERS)


def _is_plain_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json"
    return False


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, and the messages it came in (to hand on if the route takes over)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    if messages[-1]["type"] != "http.request":
        return b"", messages
    return b"".join(m.get("body", b"") for m in messages), messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


def _model(model: type[BaseModel], body: bytes) -> Any:
    """The body validated as FastAPI validates it (Python mode on the parsed JSON), or None."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


@dataclass(frozen=True, slots=True)
class _Call:
    """One request on its way through the hot path."""

    scope: Scope
    receive: Receive
    send: Send
    principal: Principal
    #: The path's user segment as sent (`me` or the caller's id).
    named: str


async def _json_body(call: _Call, model: type[BaseModel]) -> tuple[Any, Receive]:
    """The body as a valid `model`, or None with the `receive` that hands it on as read."""
    if not _is_plain_json(call.scope):
        return None, call.receive
    body, messages = await _read_body(call.receive)
    data = _model(model, body) if body else None
    return data, _replaying(messages, call.receive)


class HotPathMiddleware:
    """Innermost layer: serves the hot requests itself, hands the rest to FastAPI."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        routes = {
            route.name: route for route in tasks_routes.router.routes if isinstance(route, APIRoute)
        }
        self.list_route = routes["list_tasks"]
        self.create_route = routes["create_task"]
        self.get_route = routes["get_task"]
        self.update_route = routes["update_task"]
        self.complete_route = routes["complete_task"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            onward = await self._serve(scope, receive, send)
            if onward is None:
                return
            receive = onward
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """None when the request was answered here; else the `receive` to hand on with
        (the original one, or one replaying a body read here)."""
        path: str = scope["path"]
        parts = path.split("/")
        # ['', 'api', user, 'tasks', (id, ('complete'))]
        if len(parts) < 4 or len(parts) > 6 or parts[1] != "api" or parts[3] != "tasks":
            return receive
        state = scope.get("state")
        principal = state.get("principal") if state else None
        if not isinstance(principal, Principal):
            return receive
        named = parts[2]
        if named in RESERVED_USER_IDS and named != "me":
            return receive
        if named != "me" and named != principal.user_id:
            return receive
        for name, _ in scope["headers"]:
            if name in _DEFERRED_HEADERS:
                return receive
        call = _Call(scope, receive, send, principal, named)
        method: str = scope["method"]
        if len(parts) == 4:
            if method == "GET":
                return await self._list(call)
            if method == "POST":
                return await self._create(call)
            return receive
        task_id = _task_id(parts[4])
        if not task_id:
            return receive
        if len(parts) == 5:
            if method == "GET":
                return await self._get(call, task_id)
            if method == "PATCH":
                return await self._update(call, task_id)
            return receive
        if parts[5] == "complete" and method == "PATCH":
            return await self._complete(call, task_id)
        return receive

    def _enter(self, scope: Scope, route: APIRoute, path_params: dict[str, Any]) -> None:
        """What FastAPI's router would have recorded (the access log names the route)."""
        scope["route"] = route
        scope["path_params"] = path_params
        scope.setdefault("router", self.fastapi.router)

    def _settings(self) -> Any:
        return self.fastapi.state.settings

    def _database(self) -> Database:
        database: Database = self.fastapi.state.database
        return database

    async def _answer(self, call: _Call, work: Callable[[Any], Awaitable[Response]]) -> None:
        """`work` in the caller's transaction on the driver connection
        (`Database.driver_session`), committed before the response is sent."""
        scope = call.scope
        try:
            async with self._database().driver_session(call.principal.user_id) as session:
                response = await work(session)
                scope["state"][COMMITTING] = True
        except Exception as error:
            response = await self._error_response(scope, call.receive, error)
        await response(scope, call.receive, call.send)

    async def _error_response(self, scope: Scope, receive: Receive, error: Exception) -> Response:
        """The app's own exception handler for `error` (re-raised when it has none)."""
        handlers = self.fastapi.exception_handlers
        for kind in type(error).__mro__:
            handler = handlers.get(kind)
            if handler is not None:
                response = handler(Request(scope, receive), error)
                if inspect.isawaitable(response):
                    response = await response
                assert isinstance(response, Response)
                return response
        raise error

    async def _get(self, call: _Call, task_id: int) -> Receive | None:
        self._enter(call.scope, self.get_route, {"user_id": call.named, "task_id": task_id})
        user_id = call.principal.user_id

        async def work(session: Any) -> Response:
            row = await service.get_task(session, user_id, task_id)
            return task_response(row, headers={"ETag": etag(row["version"])})

        await self._answer(call, work)
        return None

    async def _list(self, call: _Call) -> Receive | None:
        query = _list_query(call.scope.get("query_string", b""))
        if query is None:
            return call.receive
        self._enter(call.scope, self.list_route, {"user_id": call.named})
        codec = self.fastapi.state.cursor_codec
        user_id = call.principal.user_id

        async def work(session: Any) -> Response:
            page = await service.list_tasks(session, user_id, query, codec)
            return tasks_routes.page_response(Request(call.scope, call.receive), page)

        await self._answer(call, work)
        return None

    async def _create(self, call: _Call) -> Receive | None:
        data, onward = await _json_body(call, TaskCreate)
        if data is None:
            return onward
        self._enter(call.scope, self.create_route, {"user_id": call.named})
        quotas = self.fastapi.state.quotas
        user_id = call.principal.user_id

        async def work(session: Any) -> Response:
            row = await task_writes.create_task(session, user_id, data, quotas)
            return tasks_routes.created_response(Request(call.scope, call.receive), row)

        await self._answer(call, work)
        return None

    async def _update(self, call: _Call, task_id: int) -> Receive | None:
        if self._settings().require_if_match:
            return call.receive
        data, onward = await _json_body(call, TaskUpdate)
        if data is None:
            return onward
        self._enter(call.scope, self.update_route, {"user_id": call.named, "task_id": task_id})
        quotas = self.fastapi.state.quotas
        user_id = call.principal.user_id

        async def work(session: Any) -> Response:
            row = await task_writes.update_task(session, user_id, task_id, data, quotas, None)
            return task_response(row, headers={"ETag": etag(row["version"])})

        await self._answer(call, work)
        return None

    async def _complete(self, call: _Call, task_id: int) -> Receive | None:
        """Only the toggle without a body (a body with `completed` goes to the route)."""
        if self._settings().require_if_match:
            return call.receive
        for name, value in call.scope["headers"]:
            if name == b"content-length" and value != b"0":
                return call.receive
            if name == b"transfer-encoding" or name == b"content-type":
                return call.receive
        self._enter(call.scope, self.complete_route, {"user_id": call.named, "task_id": task_id})
        quotas = self.fastapi.state.quotas
        user_id = call.principal.user_id

        async def work(session: Any) -> Response:
            row = await task_writes.set_completion(session, user_id, task_id, None, quotas, None)
            return task_response(row, headers={"ETag": etag(row["version"])}, completion=True)

        await self._answer(call, work)
        return None
