"""The floor: the benchmark's requests served as directly as Python allows.

    DATABASE_URL=postgresql://todo_bench_owner@127.0.0.1:5432/todo_bench \\
    JWT_SECRET=... uv run python bench/floor.py --port 8101

Raw Starlette routes, asyncpg and orjson, doing per request what the API does on the
database and for authentication, and nothing else:

- the same token check (`bearer_token` and `TokenVerifier` from `todo_api.auth`, so the
  cost, cache of verified tokens included, is the same);
- the same pool (`Database.open`) and the same transaction: BEGIN, the user-context
  statement from `Database.context_arguments`, one statement, COMMIT;
- the API's own SQL: each statement below is the `Statement` the API's services compile
  for that request (`services.tasks`, `services.task_list_sql`, `services.task_statements`),
  taken at start-up with its parameter order; the floor only fills in the values;
- the same JSON body and the `ETag`, `Location` and `Link` headers.

It serves the benchmark's requests only (`bench/endpoints.py`): the first page of a list,
optionally with `tag` and `q`; one task; a create with a title and a description; a
PATCH of the title, with or without `If-Match`; the completion toggle. Each on every
spelling: `/api/{user_id}/tasks...`, `/api/me/tasks...`, `/api/tasks...`.
`tests/test_bench_floor.py` checks that for each of them the API runs exactly the
statement and arguments the floor does.

What it leaves out is what the API adds on top: middleware, FastAPI's routing,
dependencies and validation, the services. The distance between the two in
`bench/run.py`'s table is what that costs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from todo_api.auth.principal import Principal, TokenError, bearer_token
from todo_api.auth.tokens import AuthConfig, TokenVerifier
from todo_api.config import Settings
from todo_api.db.database import Database
from todo_api.db.statements import Statement, cached
from todo_api.schemas.tasks import TaskSort, TaskStatus
from todo_api.schemas.values import tag_key
from todo_api.services import task_statements as writes
from todo_api.services.task_list_sql import ListShape, escape_like, list_statement
from todo_api.services.tasks import _GET_TASK
from todo_api.services.versions import Precondition

MAX_ID = 2**63 - 1
MAX_PAGE = 200


class Prepared:
    """One of the API's compiled statements: its SQL text and parameter order."""

    __slots__ = ("fixed", "names", "sql")

    def __init__(self, statement: Statement) -> None:
        self.sql = statement.sql
        self.names = statement.names
        #: Values compiled into the statement (`TAG_WALK`, the quota step, 'UTC').
        self.fixed = dict(statement.fixed)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        return [values[name] if name in values else fixed[name] for name in self.names]


def _list(*, tags: bool, search: bool) -> Prepared:
    """A first page, newest first, with or without the tag filter and the search."""
    shape = ListShape(TaskStatus.all, TaskSort.created, descending=True, search=search, tags=tags)
    return Prepared(cached(list_statement, shape))


#: First pages by (tag filter, search).
LIST = {(t, s): _list(tags=t, search=s) for t in (False, True) for s in (False, True)}
GET = Prepared(_GET_TASK)
#: A create from the benchmark's body: a title, a description, every other field its default.
CREATE_VALUES: dict[str, Any] = {
    "title": "",
    "description": None,
    **writes.completion_values(False),
    "priority": 0,
    "recurrence": None,
    "repeat_from": "due",
    "remind_at": None,
    "list_id": None,
    "parent_id": None,
    **writes.due_values(None),
}
CREATE = Prepared(cached(writes.insert_statement, writes.shape_of(CREATE_VALUES)))
#: PATCH of the title, by `If-Match` check (none, `*`, listed versions).
PATCH = {
    check: Prepared(cached(writes.update_statement, writes.shape_of({"title": ""}), False, check))
    for check in (None, "any", "listed")
}
TOGGLE = Prepared(
    cached(writes.update_statement, writes.shape_of(writes.TOGGLE_VALUES), True, None)
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one request runs: a statement and its arguments; `search` plans it for its
    values (the API's `custom_plans`, for `q`)."""

    statement: Prepared
    arguments: list[Any]
    search: bool = False


def _title(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    title = value.strip()
    return title if 1 <= len(title) <= 200 else None


def plan_list(user_id: str, query: QueryParams) -> Plan | None:
    """A first page (`limit`, any `tag`s, `q`); None for anything else."""
    if not set(query.keys()) <= {"limit", "tag", "q"}:
        return None
    limit = query.get("limit", "50")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
        return None
    values: dict[str, Any] = {"user_id": user_id, "limit": int(limit) + 1}
    q = query.get("q")
    if q is not None:
        q = q.strip()
        if not q:
            return None
        values["pattern"] = f"%{escape_like(q)}%"
    tags = query.getlist("tag")
    if tags:
        keys = sorted({tag_key(name.strip()) for name in tags})
        values["tag_keys"] = keys
        values["tag_count"] = len(keys)
    statement = LIST[bool(tags), q is not None]
    return Plan(statement, statement.arguments(values), search=q is not None)


def plan_get(user_id: str, task_id: int) -> Plan:
    return Plan(GET, GET.arguments({"user_id": user_id, "task_id": task_id}))


def plan_create(user_id: str, data: Mapping[str, Any], quota: int) -> Plan | None:
    """The benchmark's create: `{"title": ..., "description": ...}`."""
    title, description = _title(data.get("title")), data.get("description")
    if set(data) != {"title", "description"} or title is None:
        return None
    if not isinstance(description, str) or len(description) > 2000:
        return None
    values = writes.parameters({**CREATE_VALUES, "title": title, "description": description})
    values.update(user_id=user_id, quota=quota)
    return Plan(CREATE, CREATE.arguments(values))


def plan_patch(
    user_id: str, task_id: int, data: Mapping[str, Any], if_match: str | None
) -> Plan | None:
    """The benchmark's PATCH: `{"title": ...}`, with or without `If-Match`."""
    title = _title(data.get("title"))
    if set(data) != {"title"} or title is None:
        return None
    precondition = Precondition.parse(if_match) if if_match is not None else None
    statement = PATCH[writes.version_check(precondition)]
    values = {"v_title": title, "user_id": user_id, "task_id": task_id}
    values.update(writes.version_parameters(precondition))
    return Plan(statement, statement.arguments(values))


def plan_toggle(user_id: str, task_id: int) -> Plan:
    return Plan(TOGGLE, TOGGLE.arguments({"user_id": user_id, "task_id": task_id}))


_PRIORITIES = ("none", "low", "medium", "high")
#: Columns the statements return that a response does not show (`due_at` is folded
#: into `due_date`).
_HIDDEN = ("due_at", "due_sort_at", "was_completed", "zone")


def _task(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the API renders it (`TaskPublic`, or `TaskCompleted` for the toggle)."""
    task = dict(row)
    if task["due_at"] is not None:
        task["due_date"] = task["due_at"]
    task["priority"] = _PRIORITIES[task["priority"]]
    for name in _HIDDEN:
        task.pop(name, None)
    return task


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # asyncpg returns UTC-aware datetimes; OPT_UTC_Z writes them as the API does.
    content = orjson.dumps(body, option=orjson.OPT_UTC_Z)
    return Response(content, status, headers, media_type="application/json")


def _problem(status: int, code: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"status": status, "code": code})
    return Response(body, status, headers, media_type="application/problem+json")


def _body(raw: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _task_id(request: Request) -> int | None:
    task_id: int = request.path_params["task_id"]
    return task_id if 1 <= task_id <= MAX_ID else None


class Floor:
    """The pool, the verifier and the transaction; the route handlers are its methods."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url is not None, "DATABASE_URL is required"
        self.database = Database.from_url(settings.database_url.get_secret_value(), settings)
        self.verifier = TokenVerifier(AuthConfig.from_settings(settings))
        self.quota = settings.max_tasks_per_user
        self.cursor_key = hashlib.sha256(b"floor/cursor").digest()

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.database.open()
        await self.database.ensure_inspected()
        await self.verifier.start()
        try:
            yield
        finally:
            await self.verifier.aclose()
            await self.database.dispose()

    async def _principal(self, request: Request) -> Principal | Response:
        headers = [v for k, v in request.scope["headers"] if k == b"authorization"]
        try:
            principal = await self.verifier.verify(bearer_token(headers))
        except TokenError as error:
            challenge = f'Bearer error="invalid_token", error_description="{error.code}"'
            return _problem(401, error.code, {"WWW-Authenticate": challenge})
        named = request.path_params.get("user_id", "me")
        if named != "me" and named != principal.user_id:
            return _problem(403, "user_mismatch")
        return principal

    async def _run(self, user_id: str, plan: Plan) -> list[Any]:
        """BEGIN, the user context, the plan's statement, COMMIT: its rows."""
        database = self.database
        assert database.pool is not None
        context, context_args = database.context_arguments(user_id, plan.search)
        pool = database.pool
        async with pool.acquire(timeout=database.acquire_timeout) as conn, conn.transaction():
            await conn.execute(context, *context_args)
            return list(await conn.fetch(plan.statement.sql, *plan.arguments))

    def _cursor(self, user_id: str, key: list[Any]) -> str:
        payload = orjson.dumps([["created", "desc", "all"], key])
        mac = hmac.new(self.cursor_key, user_id.encode() + payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(payload + mac[:12]).rstrip(b"=").decode()

    async def list_tasks(self, request: Request) -> Response:
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        plan = plan_list(principal.user_id, request.query_params)
        if plan is None:
            return _problem(422, "validation_error")
        page = plan.arguments[plan.statement.names.index("limit")] - 1
        rows = await self._run(principal.user_id, plan)
        headers = None
        if len(rows) > page:
            rows = rows[:page]
            last = rows[-1]
            cursor = self._cursor(principal.user_id, [last["created_at"].isoformat(), last["id"]])
            next_url = request.url.include_query_params(cursor=cursor)
            headers = {"Link": f'<{next_url}>; rel="next"'}
        return _json([_task(row) for row in rows], headers=headers)

    async def get_task(self, request: Request) -> Response:
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = _task_id(request)
        if task_id is None:
            return _problem(422, "validation_error")
        rows = await self._run(principal.user_id, plan_get(principal.user_id, task_id))
        if not rows:
            return _problem(404, "task_not_found")
        return _json(_task(rows[0]), headers={"ETag": f'"{rows[0]["version"]}"'})

    async def create_task(self, request: Request) -> Response:
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        data = _body(await request.body())
        plan = None if data is None else plan_create(principal.user_id, data, self.quota)
        if plan is None:
            return _problem(422, "validation_error")
        rows = await self._run(principal.user_id, plan)
        if not rows:
            return _problem(409, "quota_tasks")
        # A new task has no tags or next occurrence yet (the API answers so too).
        task = _task({**rows[0], "tags": [], "next_occurrence_id": None})
        prefix = request.url.path.removesuffix("/tasks")
        headers = {
            "Location": f"{request.base_url}{prefix.lstrip('/')}/tasks/{task['id']}",
            "ETag": f'"{task["version"]}"',
        }
        return _json(task, 201, headers)

    async def update_task(self, request: Request) -> Response:
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = _task_id(request)
        data = _body(await request.body())
        if_match = request.headers.get("if-match")
        plan = None
        if task_id is not None and data is not None:
            plan = plan_patch(principal.user_id, task_id, data, if_match)
        if plan is None or task_id is None:
            return _problem(422, "validation_error")
        rows = await self._run(principal.user_id, plan)
        if not rows:
            if if_match is None:
                return _problem(404, "task_not_found")
            # As the API: a read tells 412 (with the current version) from 404.
            current = await self._run(principal.user_id, plan_get(principal.user_id, task_id))
            if not current:
                return _problem(404, "task_not_found")
            return _problem(412, "precondition_failed", {"ETag": f'"{current[0]["version"]}"'})
        return _json(_task(rows[0]), headers={"ETag": f'"{rows[0]["version"]}"'})

    async def complete_task(self, request: Request) -> Response:
        """The toggle (no body). The seed has no recurring tasks, so the next occurrence
        that completing one would create never comes up."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = _task_id(request)
        if task_id is None or await request.body():
            return _problem(422, "validation_error")
        rows = await self._run(principal.user_id, plan_toggle(principal.user_id, task_id))
        if not rows:
            return _problem(404, "task_not_found")
        return _json(_task(rows[0]), headers={"ETag": f'"{rows[0]["version"]}"'})


async def _healthz(request: Request) -> Response:
    return Response(b"ok", media_type="text/plain")


def create_floor(settings: Settings | None = None) -> Starlette:
    """The floor application (DATABASE_URL, JWT_SECRET and pool sizes from the environment)."""
    floor = Floor(settings or Settings())
    routes = [Route("/healthz", _healthz)]
    # The short spelling first: `/api/tasks/...` is never `/api/{user_id}/...`.
    for tasks in ("/api/tasks", "/api/{user_id}/tasks"):
        task = tasks + "/{task_id:int}"
        routes += [
            Route(tasks, floor.list_tasks, methods=["GET"]),
            Route(tasks, floor.create_task, methods=["POST"]),
            Route(task, floor.get_task, methods=["GET"]),
            Route(task, floor.update_task, methods=["PATCH"]),
            Route(task + "/complete", floor.complete_task, methods=["PATCH"]),
        ]
    return Starlette(routes=routes, lifespan=floor.lifespan)


def main() -> None:
    """Serve the floor with the server settings of `todo-api serve` (uvloop, httptools)."""
    parser = argparse.ArgumentParser(description="The benchmark's floor app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    uvicorn.run(
        create_floor(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
