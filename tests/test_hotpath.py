"""The hot path answers exactly as FastAPI's routes do, and hands on what it does not take.

Every request here is sent twice: to the app (hot path on) and to an app built with
`hot_path=False` (FastAPI's routes only), on the same database. A spy on
`HotPathMiddleware._serve` records which of them the hot path answered itself, so a
shape that silently stopped being served fast fails here too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import User, make_settings
from todo_api.db import Database
from todo_api.hotpath import HotPathMiddleware, _list_query, _task_id
from todo_api.main import create_app
from todo_api.schemas.common import MAX_ID

#: Headers both paths must agree on (the request id is fixed by the test).
_COMPARED = ("content-type", "etag", "link", "location", "allow", "www-authenticate")
_JSON = {"Content-Type": "application/json"}
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
#: Fields that differ between two tasks created alike.
_PER_TASK = ("id", "created_at", "updated_at", "completed_at", "position")


@pytest.fixture(scope="module")
async def routes_app(owner_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(owner_url), hot_path=False)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="module")
async def routes_client(routes_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=routes_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per request reaching the hot path: True when it answered it itself."""
    calls: list[bool] = []
    original = HotPathMiddleware._serve

    async def spy(self: HotPathMiddleware, scope: Any, receive: Any, send: Any) -> bool:
        onward = await original(self, scope, receive, send)
        calls.append(onward is None)
        return onward

    monkeypatch.setattr(HotPathMiddleware, "_serve", spy)
    return calls


class Pair:
    """One user, reachable through both apps with the same token."""

    def __init__(self, hot: User, routes: httpx.AsyncClient) -> None:
        self.hot = hot
        self.routes = routes

    async def both(
        self, method: str, url: str, **kwargs: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        headers = {**self.hot.headers, "X-Request-ID": "hotpath-test", **kwargs.pop("headers", {})}
        fast = await self.hot.http.request(method, url, headers=headers, **kwargs)
        slow = await self.routes.request(method, url, headers=headers, **kwargs)
        return fast, slow


@pytest.fixture
def pair(new_user: Callable[..., User], routes_client: httpx.AsyncClient) -> Pair:
    return Pair(new_user(), routes_client)


def assert_same(fast: httpx.Response, slow: httpx.Response, *, per_task: bool = False) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    for name in _COMPARED:
        if per_task and name in ("etag", "location"):
            continue
        assert fast.headers.get(name) == slow.headers.get(name), name
    if per_task:
        assert _shape(fast.json()) == _shape(slow.json())
    else:
        assert fast.content == slow.content


def _shape(body: Any) -> Any:
    if isinstance(body, list):
        return [_shape(item) for item in body]
    return {key: value for key, value in body.items() if key not in _PER_TASK}


async def test_reads_are_served_fast_and_alike(pair: Pair, served: list[bool]) -> None:
    for number in range(5):
        created = await pair.hot.create_task(
            f"task {number}", tags=["home"] if number % 2 else [], priority="high"
        )
    served.clear()
    urls = [
        f"/api/me/tasks/{created['id']}",
        f"/api/{pair.hot.id}/tasks/{created['id']}",
        "/api/me/tasks",
        "/api/me/tasks?limit=2",
        "/api/me/tasks?status=pending&sort=title&limit=2",
        "/api/me/tasks?sort=title&order=desc",
        "/api/me/tasks?status=completed",
    ]
    for url in urls:
        fast, slow = await pair.both("GET", url)
        assert fast.status_code == 200
        assert_same(fast, slow)
    # Following `Link` gives the cursor form, which is served fast too.
    fast, slow = await pair.both("GET", "/api/me/tasks?limit=2")
    next_url = fast.links["next"]["url"]
    fast_next, slow_next = await pair.both("GET", next_url)
    assert len(fast_next.json()) == 2
    assert_same(fast_next, slow_next)
    assert served == [True] * (len(urls) + 2)


async def test_missing_and_foreign_tasks_are_404_alike(
    pair: Pair, bob: User, served: list[bool]
) -> None:
    theirs = await bob.create_task("bob's")
    served.clear()
    for url in (f"/api/me/tasks/{theirs['id']}", f"/api/me/tasks/{MAX_ID}"):
        fast, slow = await pair.both("GET", url)
        assert fast.status_code == 404
        assert fast.headers["content-type"] == "application/problem+json"
        assert_same(fast, slow)
        fast, slow = await pair.both("PATCH", url, json={"title": "mine now"})
        assert fast.status_code == 404
        assert_same(fast, slow)
        fast, slow = await pair.both("PATCH", url + "/complete")
        assert fast.status_code == 404
        assert_same(fast, slow)
    # A cursor the service refuses is answered by the hot path, as the route answers it.
    fast, slow = await pair.both("GET", "/api/me/tasks?cursor=not-a-cursor")
    assert fast.status_code == 400 or fast.status_code == 422
    assert_same(fast, slow)
    assert served == [True] * 7
    assert (await bob.get(f"/api/me/tasks/{theirs['id']}")).json()["title"] == "bob's"


async def test_writes_are_served_fast_and_alike(pair: Pair, served: list[bool]) -> None:
    body = {"title": "Buy milk", "description": "2 litres", "tags": ["shop"], "priority": "low"}
    fast, slow = await pair.both("POST", "/api/me/tasks", json=body)
    assert fast.status_code == 201
    assert_same(fast, slow, per_task=True)
    fast_id, slow_id = fast.json()["id"], slow.json()["id"]
    assert fast.headers["location"] == f"http://testserver/api/me/tasks/{fast_id}"
    assert fast.headers["etag"] == '"1"'

    fast_patch = await pair.hot.patch(f"/api/me/tasks/{fast_id}", json={"title": "Buy oat milk"})
    slow_patch = await pair.routes.patch(
        f"/api/me/tasks/{slow_id}", json={"title": "Buy oat milk"}, headers=pair.hot.headers
    )
    assert fast_patch.status_code == 200
    assert fast_patch.json()["title"] == "Buy oat milk"
    assert fast_patch.headers["etag"] == slow_patch.headers["etag"] == '"2"'
    assert _shape(fast_patch.json()) == _shape(slow_patch.json())

    for expected in (True, False):
        fast_done = await pair.hot.patch(f"/api/me/tasks/{fast_id}/complete")
        slow_done = await pair.routes.patch(
            f"/api/me/tasks/{slow_id}/complete", headers=pair.hot.headers
        )
        assert fast_done.status_code == 200
        assert fast_done.json()["completed"] is expected
        assert fast_done.json()["open_subtask_ids"] == []
        assert _shape(fast_done.json()) == _shape(slow_done.json())
    assert served == [True] * 4
    stored = (await pair.hot.get(f"/api/me/tasks/{fast_id}")).json()
    assert stored["title"] == "Buy oat milk" and stored["completed"] is False


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kind of each transaction opened: "driver" (the hot path's) or "full"."""
    opened: list[str] = []
    for kind, name in (("driver", "driver_session"), ("full", "user_session")):
        original = getattr(Database, name)

        def spy(self: Database, user_id: str, _kind: str = kind, _original: Any = original) -> Any:
            opened.append(_kind)
            return _original(self, user_id)

        monkeypatch.setattr(Database, name, spy)
    return opened


async def test_hot_requests_run_on_the_driver_session(alice: User, sessions: list[str]) -> None:
    task = await alice.create_task("Plain", description="no tags, no dates")
    tagged = await alice.create_task("Tagged", tags=["home"], due_date="2026-12-01")
    await alice.patch(f"/api/me/tasks/{task['id']}", json={"title": "Still plain"})
    await alice.patch(f"/api/me/tasks/{task['id']}", json={"tags": ["work"], "priority": "high"})
    done = (await alice.patch(f"/api/me/tasks/{task['id']}/complete")).json()
    assert done["completed"] is True and done["title"] == "Still plain"
    assert done["tags"] == ["work"]
    missing = await alice.patch("/api/me/tasks/999999999", json={"title": "nobody"})
    assert missing.status_code == 404
    page = await alice.get("/api/me/tasks?status=pending&sort=due_date&limit=1")
    assert [t["id"] for t in page.json()] == [tagged["id"]]
    assert sessions == ["driver"] * 7


async def test_core_statements_share_the_driver_sessions_transaction(
    alice: User, sessions: list[str], owner_conn: asyncpg.Connection
) -> None:
    task = await alice.create_task(
        "Water the plants", due_date="2026-12-01", recurrence="FREQ=DAILY"
    )
    sessions.clear()
    done = await alice.patch(f"/api/me/tasks/{task['id']}/complete")
    assert done.status_code == 200
    # The prebuilt toggle, then the next occurrence's Core statement: one transaction.
    assert sessions == ["driver"]
    body = done.json()
    assert body["completed"] is True and body["next_occurrence_id"] is not None
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", alice.id)
        successors = await owner_conn.fetchval(
            "SELECT count(*) FROM tasks WHERE previous_occurrence_id = $1", task["id"]
        )
        version = await owner_conn.fetchval("SELECT version FROM tasks WHERE id = $1", task["id"])
    assert successors == 1
    assert version == task["version"] + 1


async def test_a_driver_session_that_fails_late_commits_nothing(
    owner_url: str, owner_conn: asyncpg.Connection
) -> None:
    # The task's INSERT (prebuilt, on the driver) succeeds; linking a tag over the
    # quota (a Core statement) then fails: the whole request is rolled back.
    app = create_app(make_settings(owner_url, max_tags_per_user=1))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            user = User(http, f"late-{uuid.uuid4().hex[:12]}")
            await user.create_task("first", tags=["one"])
            refused = await user.post("/api/me/tasks", json={"title": "second", "tags": ["two"]})
            assert refused.status_code == 409, refused.text
            listed = (await user.get("/api/me/tasks")).json()
            assert [t["title"] for t in listed] == ["first"]
            database: Database = app.state.database
            assert database.kept_idle >= 1  # the connection is back in service, clean
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", user.id)
        count = await owner_conn.fetchval("SELECT count(*) FROM tasks")
    assert count == 1


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        # Values FastAPI validates (422) or spells differently.
        ("GET", "/api/me/tasks/0", {}, 422),
        ("GET", "/api/me/tasks/007", {}, 404),
        ("GET", f"/api/me/tasks/{MAX_ID + 1}", {}, 422),
        ("GET", "/api/me/tasks/abc", {}, 422),
        ("GET", "/api/me/tasks?limit=0", {}, 422),
        ("GET", "/api/me/tasks?limit=201", {}, 422),
        ("GET", "/api/me/tasks?limit=", {}, 422),
        ("GET", "/api/me/tasks?limit=2&limit=3", {}, 200),
        ("GET", "/api/me/tasks?status=done", {}, 422),
        ("GET", "/api/me/tasks?sort=title&order=sideways", {}, 422),
        ("GET", "/api/me/tasks?cursor=" + "x" * 1100, {}, 422),
        # Parameters the hot path leaves to the route.
        ("GET", "/api/me/tasks?q=milk", {}, 200),
        ("GET", "/api/me/tasks?tag=home&tag=work", {}, 200),
        ("GET", "/api/me/tasks?limit=%32", {}, 200),
        # Bodies that do not validate, or are not JSON objects.
        ("POST", "/api/me/tasks", {"json": {"title": ""}}, 422),
        ("POST", "/api/me/tasks", {"json": {"title": "x", "colour": "red"}}, 422),
        ("POST", "/api/me/tasks", {"json": ["title"]}, 422),
        ("POST", "/api/me/tasks", {"content": b'{"title": NaN}', "headers": _JSON}, 422),
        ("POST", "/api/me/tasks", {"content": b"", "headers": _JSON}, 422),
        ("POST", "/api/me/tasks", {"content": b"title=x", "headers": _FORM}, 422),
        ("PATCH", "/api/me/tasks/1", {"json": {"priority": "urgent"}}, 422),
        ("PATCH", "/api/me/tasks/1", {"content": b"{", "headers": _JSON}, 422),
    ],
)
async def test_what_the_hot_path_leaves_is_answered_by_the_route(
    pair: Pair,
    served: list[bool],
    method: str,
    url: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    await pair.hot.create_task("present")
    served.clear()
    fast, slow = await pair.both(method, url, **kwargs)
    assert fast.status_code == status, fast.text
    assert_same(fast, slow)
    assert served == [False]


async def test_conditional_and_idempotent_requests_go_to_the_route(
    pair: Pair, served: list[bool]
) -> None:
    task = await pair.hot.create_task("versioned")
    url = f"/api/me/tasks/{task['id']}"
    served.clear()
    unchanged = await pair.hot.get(url, headers={"If-None-Match": '"1"'})
    assert unchanged.status_code == 304
    stale = await pair.hot.patch(url, json={"title": "x"}, headers={"If-Match": '"9"'})
    assert stale.status_code == 412
    assert stale.json()["current"]["title"] == "versioned"
    key = {"Idempotency-Key": '"hotpath-key-1"'}
    first = await pair.hot.post("/api/me/tasks", json={"title": "once"}, headers=key)
    again = await pair.hot.post("/api/me/tasks", json={"title": "once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert served == [False] * 4


async def test_require_if_match_leaves_every_write_to_the_route(owner_url: str) -> None:
    application = create_app(make_settings(owner_url, require_if_match=True))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            user = User(http, "hotpath-require-if-match")
            created = await user.create_task("guarded")
            url = f"/api/me/tasks/{created['id']}"
            assert (await user.patch(url, json={"title": "x"})).status_code == 428
            assert (await user.patch(url + "/complete")).status_code == 428
            assert (await user.get(url)).json()["title"] == "guarded"


async def test_another_users_path_is_never_served(pair: Pair, bob: User) -> None:
    task = await bob.create_task("private")
    for url in (f"/api/{bob.id}/tasks/{task['id']}", f"/api/{bob.id}/tasks"):
        response = await pair.hot.get(url)
        assert response.status_code == 403
        assert "private" not in response.text


def test_task_ids_are_taken_only_in_their_plain_form() -> None:
    assert _task_id("42") == 42
    assert _task_id(str(MAX_ID)) == MAX_ID
    for segment in ("0", "042", "+42", "-1", "4 2", "٤٢", str(MAX_ID + 1), "", "1e3"):
        assert _task_id(segment) == 0, segment


def test_list_queries_are_taken_only_in_their_plain_form() -> None:
    query = _list_query(b"status=pending&sort=title&limit=20")
    assert query is not None
    assert (query.status.value, query.sort.value, query.order.value, query.limit) == (
        "pending",
        "title",
        "asc",
        20,
    )
    default = _list_query(b"")
    assert default is not None and (default.limit, default.order.value) == (50, "desc")
    for raw in (b"limit=050", b"limit=1000", b"status=", b"q=x", b"limit=2&limit=2", b"a"):
        assert _list_query(raw) is None, raw


async def test_lean_reads_survive_pooled_connections_killed_while_idle(
    owner_url: str, owner_conn: asyncpg.Connection
) -> None:
    """A connection the server closed while it sat in the pool (a serverless database
    suspending, a restart) is replaced before anything ran: the read still succeeds."""
    application = create_app(make_settings(owner_url, database_pool_size=2))
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            user = User(http, f"hotpath-idle-{uuid.uuid4().hex[:8]}")
            task = await user.create_task("still here")
            assert (await user.get("/api/me/tasks")).status_code == 200
            # Several connections kept between requests, all of them to be killed.
            await asyncio.gather(*(user.get(f"/api/me/tasks/{task['id']}") for _ in range(6)))
            assert application.state.database.kept_idle >= 2
            killed = await owner_conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE usename = current_user AND datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
            assert killed >= 1
            one = await user.get(f"/api/me/tasks/{task['id']}")
            page = await user.get("/api/me/tasks")
            assert one.status_code == 200 and one.json()["title"] == "still here"
            assert page.status_code == 200 and [t["id"] for t in page.json()] == [task["id"]]
            assert not application.state.database.breaker.is_open
