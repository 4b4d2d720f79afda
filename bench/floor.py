"""The floor: the task endpoints the benchmark drives, written as directly as Python allows.

    DATABASE_URL=postgresql://todo_bench_owner@127.0.0.1:5432/todo_bench \\
    JWT_SECRET=... uv run python bench/floor.py --port 8101

Raw Starlette routing, one asyncpg pool and orjson, doing per request exactly what the
API does on the database and for authentication:

- the same token check (`todo_api.auth.bearer_token` and `TokenVerifier`, so the cost,
  cache of verified tokens included, is identical);
- the same transaction: BEGIN, the one user-context statement (with `set_config('role')`
  only when the connecting role owns the tables or bypasses row-level security, as
  `todo_api.db.Database.inspect_isolation` decides), the query, COMMIT;
- the same SQL text, copied from what SQLAlchemy sends for `todo_api.services.tasks`
  (so the prepared statements and plans are the same ones);
- the same response body, plus the `Link` and `Location` headers.

What it leaves out is what the API adds on top: its middleware, FastAPI's dependency
injection and validation, the ORM/Core layers and Pydantic serialisation. The distance
between the two in `bench/run.py`'s table is what that architecture costs.
If the API's SQL changes, `tests/test_round_trips.py` still passes but this file must be
updated by hand: copy the new statements here.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from todo_api.auth import AuthConfig, Principal, TokenError, TokenVerifier, bearer_token
from todo_api.config import Settings

APP_ROLE = "todo_api_app"
MAX_ID = 2**63 - 1
MAX_PAGE = 200

CONTEXT_WITH_ROLE = (
    "SELECT set_config('app.user_id', $1, true), set_config('role', $2, true), "
    "set_config('statement_timeout', $3, true)"
)
CONTEXT = "SELECT set_config('app.user_id', $1, true), set_config('statement_timeout', $2, true)"
# The query that `Database.inspect_isolation` uses to decide on the role switch.
SWITCH_ROLE = (
    "SELECT r.rolsuper OR r.rolbypassrls"
    " OR EXISTS (SELECT 1 FROM pg_tables t"
    "            WHERE t.schemaname = current_schema()"
    "              AND t.tablename = 'tasks' AND t.tableowner = current_user)"
    " FROM pg_roles r WHERE r.rolname = current_user"
)

_STORED = (
    "tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, "
    "tasks.completed_at, tasks.created_at, tasks.updated_at, tasks.priority, "
    "tasks.due_date, tasks.due_at, tasks.due_sort_at, tasks.recurrence, tasks.repeat_from, "
    "tasks.previous_occurrence_id, tasks.remind_at, tasks.reminder_dismissed_at, "
    "tasks.list_id, tasks.parent_id, tasks.position, tasks.version"
)
# `services.tasks.TAGS` and `NEXT_OCCURRENCE`: correlated subqueries, one statement.
_TAGS = (
    "array((SELECT tags.name \nFROM tags JOIN task_tags ON task_tags.user_id = tags.user_id "
    "AND task_tags.tag_id = tags.id \nWHERE task_tags.user_id = tasks.user_id AND "
    "task_tags.task_id = tasks.id ORDER BY tags.name_key)) AS tags"
)
_NEXT = (
    "(SELECT next_task.id \nFROM tasks AS next_task \nWHERE next_task.user_id = tasks.user_id "
    "AND next_task.previous_occurrence_id = tasks.id) AS next_occurrence_id"
)
_COLUMNS = f"{_STORED}, {_TAGS}, {_NEXT}"
# In INSERT ... RETURNING SQLAlchemy does not correlate the two subqueries with the
# inserted row: it adds `tasks` to their FROM lists. Copied as sent (see bench/README.md).
_STATUS_FILTER = {
    "all": "",
    "pending": " AND tasks.completed = false",
    "completed": " AND tasks.completed = true",
}
_ORDER = {
    ("created", "desc"): "tasks.created_at DESC, tasks.id DESC",
    ("created", "asc"): "tasks.created_at ASC, tasks.id ASC",
    ("title", "asc"): "tasks.title ASC, tasks.id ASC",
    ("title", "desc"): "tasks.title DESC, tasks.id DESC",
}
#: First-page list statements, keyed by (status, sort, order), as SQLAlchemy renders them.
LIST_SQL = {
    (status, sort, order): (
        f"SELECT {_COLUMNS} \nFROM tasks \nWHERE tasks.user_id = $1::VARCHAR{where} "
        f"ORDER BY {order_by} \n LIMIT $2::INTEGER"
    )
    for status, where in _STATUS_FILTER.items()
    for (sort, order), order_by in _ORDER.items()
}
GET_SQL = (
    f"SELECT {_COLUMNS} \nFROM tasks \nWHERE tasks.user_id = $1::VARCHAR AND tasks.id = $2::BIGINT"
)
#: `task_writes._UNDATED_INSERT`: the quota slot (profile upsert) and the insert in one
#: statement. $1 title, $2 description, $3 completed, $4 priority rank, $5 recurrence,
#: $6 repeat_from, $7 remind_at, $8 list_id, $9 parent_id, $10 user id, $11 1,
#: $12 the task quota.
INSERT_SQL = (
    "WITH room_task_count AS \n(INSERT INTO profiles (user_id) VALUES ($10::VARCHAR) "
    "ON CONFLICT (user_id) DO UPDATE SET task_count = profiles.task_count "
    "WHERE profiles.task_count + $11::INTEGER <= $12::INTEGER RETURNING profiles.user_id, "
    "profiles.timezone, profiles.task_count, profiles.list_count, profiles.tag_count)\n "
    "INSERT INTO tasks (user_id, title, description, completed, priority, recurrence, "
    "repeat_from, remind_at, list_id, parent_id, completed_at, due_date, due_at, due_sort_at) "
    "SELECT room_task_count.user_id, $1::VARCHAR AS anon_1, $2::VARCHAR AS anon_2, "
    "$3::BOOLEAN AS anon_3, $4::SMALLINT AS anon_4, $5::VARCHAR AS anon_5, "
    "$6::VARCHAR AS anon_6, $7::TIMESTAMP WITH TIME ZONE AS anon_7, $8::BIGINT AS anon_8, "
    "$9::BIGINT AS anon_9, CASE WHEN $3::BOOLEAN THEN now() ELSE NULL END AS anon_10, "
    "CAST(NULL AS DATE) AS anon_11, CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS anon__1, "
    "CAST(NULL AS TIMESTAMP WITH TIME ZONE) AS anon__2 \nFROM room_task_count "
    f"RETURNING {_STORED}"
)
TASK_QUOTA = 10_000
_COMPLETION_FROM = (
    "FROM (SELECT tasks.id AS id, tasks.completed AS was_completed \nFROM tasks \n"
    "WHERE tasks.user_id = ${0}::VARCHAR AND tasks.id = ${1}::BIGINT FOR UPDATE) AS before "
    "WHERE tasks.user_id = ${2}::VARCHAR AND tasks.id = before.id RETURNING "
)
# `task_writes.OPEN_SUBTASKS`, the lock-read `was_completed` and the profile's zone.
_COMPLETION_EXTRA = (
    """, array(
        WITH RECURSIVE below(id, completed) AS (
            SELECT c.id, c.completed FROM tasks AS c
            WHERE c.user_id = tasks.user_id AND c.parent_id = tasks.id
            UNION ALL
            SELECT c.id, c.completed FROM tasks AS c
            JOIN below ON c.user_id = tasks.user_id AND c.parent_id = below.id
        )
        SELECT id FROM below WHERE NOT completed ORDER BY id
    ) AS open_subtask_ids, before.was_completed, coalesce((SELECT profiles.timezone \n"""
    "FROM profiles \nWHERE profiles.user_id = ${3}::VARCHAR), ${4}::VARCHAR) AS zone"
)


def _completion(set_clause: str, first: int) -> str:
    """`task_writes._write(completion=True)`; its parameters start at `$first`."""
    numbers = range(first, first + 5)
    return (
        f"UPDATE tasks SET {set_clause}, updated_at=now() "
        + _COMPLETION_FROM.format(*numbers)
        + _COLUMNS
        + _COMPLETION_EXTRA.format(*numbers)
    )


#: `task_writes._prebuilt_write` for the toggle: $1 user id, $2 task id, $3 'UTC' (the
#: zone's default).
TOGGLE_SQL = (
    "UPDATE tasks SET completed=NOT tasks.completed, completed_at=CASE WHEN NOT "
    "tasks.completed THEN coalesce(tasks.completed_at, now()) END, updated_at=now() "
    + _COMPLETION_FROM.format(1, 2, 1)
    + _COLUMNS
    + _COMPLETION_EXTRA.format(1, 2, 1, 1, 3)
)
#: $1, $2 completed; then as TOGGLE_SQL from $3.
SET_COMPLETED_SQL = _completion(
    "completed=$1::BOOLEAN, completed_at=CASE WHEN $2::BOOLEAN THEN "
    "coalesce(tasks.completed_at, now()) END",
    3,
)
_PRIORITIES = ("none", "low", "medium", "high")
#: Columns the API reads but does not return (`due_at` becomes `due_date`).
_HIDDEN = ("due_at", "due_sort_at", "was_completed", "zone")


def _task(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A row as the API's `TaskPublic` (or `TaskCompleted`) renders it."""
    task = dict(row)
    if task["due_at"] is not None:
        task["due_date"] = task["due_at"]
    task["priority"] = _PRIORITIES[task["priority"]]
    for name in _HIDDEN:
        task.pop(name, None)
    return task


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # asyncpg hands back UTC-aware datetimes; OPT_UTC_Z writes them as the API does.
    return Response(
        orjson.dumps(body, option=orjson.OPT_UTC_Z),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _problem(status: int, code: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"status": status, "code": code})
    return Response(body, status, headers, media_type="application/problem+json")


class Floor:
    """Pool, verifier and per-request transaction; the route handlers are its methods."""

    def __init__(self, settings: Settings) -> None:
        assert settings.database_url is not None, "DATABASE_URL is required"
        self.url = settings.database_url.get_secret_value()
        self.max_connections = settings.database_pool_size + settings.database_max_overflow
        self.timeout = str(settings.database_statement_timeout_ms)
        self.verifier = TokenVerifier(AuthConfig.from_settings(settings))
        self.cursor_key = hashlib.sha256(b"floor/cursor").digest()
        self.pool: asyncpg.Pool | None = None
        self.switch_role = False

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Same ceiling on connections as the API's pool (size + overflow); the reset
        # callback is a no-op because asyncpg's default reset costs a round trip per
        # release, which SQLAlchemy's pool (a rollback with nothing to roll back) does not.
        self.pool = await asyncpg.create_pool(
            self.url, min_size=1, max_size=self.max_connections, reset=_no_reset
        )
        async with self.pool.acquire() as conn:
            self.switch_role = bool(await conn.fetchval(SWITCH_ROLE))
        await self.verifier.start()
        try:
            yield
        finally:
            await self.verifier.aclose()
            await self.pool.close()

    async def _principal(self, request: Request) -> Principal | Response:
        headers = [v for k, v in request.scope["headers"] if k == b"authorization"]
        try:
            principal = await self.verifier.verify(bearer_token(headers))
        except TokenError as error:
            challenge = f'Bearer error="invalid_token", error_description="{error.code}"'
            return _problem(401, error.code, {"WWW-Authenticate": challenge})
        named = request.path_params["user_id"]
        if named != "me" and named != principal.user_id:
            return _problem(403, "user_mismatch")
        return principal

    async def _run(self, user_id: str, *statements: tuple[str, tuple[Any, ...]]) -> list[Any]:
        """BEGIN, user context, the statements (rows of the last one returned), COMMIT."""
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            if self.switch_role:
                await conn.execute(CONTEXT_WITH_ROLE, user_id, APP_ROLE, self.timeout)
            else:
                await conn.execute(CONTEXT, user_id, self.timeout)
            for sql, args in statements[:-1]:
                await conn.execute(sql, *args)
            sql, args = statements[-1]
            return list(await conn.fetch(sql, *args))

    def _cursor(self, binding: list[str], key: list[Any]) -> str:
        payload = orjson.dumps([binding, key])
        mac = hmac.new(self.cursor_key, payload, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    async def list_tasks(self, request: Request) -> Response:
        """First page of a list, with the API's filters and sorts (no cursor paging)."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        query = request.query_params
        status = query.get("status", "all")
        sort = query.get("sort", "created")
        order = query.get("order") or ("desc" if sort == "created" else "asc")
        sql = LIST_SQL.get((status, sort, order))
        limit = query.get("limit", "50")
        if sql is None or not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE:
            return _problem(422, "validation_error")
        page = int(limit)
        rows = await self._run(principal.user_id, (sql, (principal.user_id, page + 1)))
        headers = None
        if len(rows) > page:
            rows = rows[:page]
            last = rows[-1]
            value = last["created_at"].isoformat() if sort == "created" else last["title"]
            cursor = self._cursor([sort, order, status], [value, last["id"]])
            next_url = request.url.include_query_params(cursor=cursor)
            headers = {"Link": f'<{next_url}>; rel="next"'}
        return _json([_task(row) for row in rows], headers=headers)

    async def get_task(self, request: Request) -> Response:
        """One task, or 404."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = request.path_params["task_id"]
        if not 1 <= task_id <= MAX_ID:
            return _problem(422, "validation_error")
        rows = await self._run(principal.user_id, (GET_SQL, (principal.user_id, task_id)))
        if not rows:
            return _problem(404, "task_not_found")
        return _json(_task(rows[0]))

    async def create_task(self, request: Request) -> Response:
        """Create (the benchmark's body: title and description), 201 with `Location`."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        data = _body(await request.body())
        if data is None or set(data) != {"title", "description"}:
            return _problem(422, "validation_error")
        title = data["title"]
        description = data["description"]
        if (
            not isinstance(title, str)
            or not 1 <= len(title := title.strip()) <= 200
            or not isinstance(description, str)
            or len(description) > 2000
        ):
            return _problem(422, "validation_error")
        user_id = principal.user_id
        params = (title, description, False, 0, None, "due", None, None, None)
        rows = await self._run(user_id, (INSERT_SQL, (*params, user_id, 1, TASK_QUOTA)))
        if not rows:
            return _problem(409, "quota_tasks")
        # A new task has no tags or next occurrence yet (the API returns them so too).
        row = _task({**dict(rows[0]), "tags": [], "next_occurrence_id": None})
        location = f"{request.base_url}api/{request.path_params['user_id']}/tasks/{row['id']}"
        return _json(row, 201, {"Location": location})

    async def update_task(self, request: Request) -> Response:
        """PATCH title and/or description (the fields the benchmark sends)."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = request.path_params["task_id"]
        data = _body(await request.body())
        if not 1 <= task_id <= MAX_ID or not data or not set(data) <= {"title", "description"}:
            return _problem(422, "validation_error")
        sets, args = [], []
        # SQLAlchemy renders SET in the table's column order; so does this.
        if "title" in data:
            title = data["title"]
            if not isinstance(title, str) or not 1 <= len(title := title.strip()) <= 200:
                return _problem(422, "validation_error")
            args.append(title)
            sets.append(f"title=${len(args)}::VARCHAR")
        if "description" in data:
            description = data["description"]
            if not (
                description is None or (isinstance(description, str) and len(description) <= 2000)
            ):
                return _problem(422, "validation_error")
            args.append(description)
            sets.append(f"description=${len(args)}::VARCHAR")
        n = len(args)
        sql = (
            f"UPDATE tasks SET {', '.join(sets)}, updated_at=now() "
            f"WHERE tasks.user_id = ${n + 1}::VARCHAR AND tasks.id = ${n + 2}::BIGINT "
            f"RETURNING {_COLUMNS}"
        )
        user_id = principal.user_id
        rows = await self._run(user_id, (sql, (*args, user_id, task_id)))
        if not rows:
            return _problem(404, "task_not_found")
        return _json(_task(rows[0]))

    async def complete_task(self, request: Request) -> Response:
        """Toggle completion, or set it from `{"completed": bool}`."""
        principal = await self._principal(request)
        if isinstance(principal, Response):
            return principal
        task_id = request.path_params["task_id"]
        raw = await request.body()
        data = _body(raw) if raw else {}
        if not 1 <= task_id <= MAX_ID or data is None or not set(data) <= {"completed"}:
            return _problem(422, "validation_error")
        completed = data.get("completed")
        user_id = principal.user_id
        if completed is None:
            statement = (TOGGLE_SQL, (user_id, task_id, "UTC"))
        elif isinstance(completed, bool):
            tail = (user_id, task_id, user_id, user_id, "UTC")
            statement = (SET_COMPLETED_SQL, (completed, completed, *tail))
        else:
            return _problem(422, "validation_error")
        rows = await self._run(user_id, statement)
        if not rows:
            return _problem(404, "task_not_found")
        # A recurring task's completion would also create its next occurrence: the
        # seed makes no recurring tasks, so the floor leaves that path out.
        return _json(_task(rows[0]))


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Nothing to reset: every setting the floor makes is transaction-local."""


def _body(raw: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


async def _healthz(request: Request) -> Response:
    return Response(b"ok", media_type="text/plain")


def create_floor(settings: Settings | None = None) -> Starlette:
    """The floor application (reads DATABASE_URL, JWT_SECRET, pool sizes from the environment)."""
    floor = Floor(settings or Settings())
    tasks = "/api/{user_id}/tasks"
    task = tasks + "/{task_id:int}"
    routes = [
        Route("/healthz", _healthz),
        Route(tasks, floor.list_tasks, methods=["GET"]),
        Route(tasks, floor.create_task, methods=["POST"]),
        Route(task, floor.get_task, methods=["GET"]),
        Route(task, floor.update_task, methods=["PATCH"]),
        Route(task + "/complete", floor.complete_task, methods=["PATCH"]),
    ]
    return Starlette(routes=routes, lifespan=floor.lifespan)


def main() -> None:
    """Serve the floor with the same server settings as `todo-api serve` (uvloop, httptools)."""
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
