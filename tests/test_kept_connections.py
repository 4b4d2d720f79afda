"""The read path keeps its connection between requests (`Database._park`): reused by the
next read, never at the cost of another request waiting for the pool, never past the
pool's recycle or invalidation, and returned when the app stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event

from tests.conftest import User, make_settings
from todo_api.db import Database
from todo_api.main import create_app


@asynccontextmanager
async def serving(owner_url: str, **settings: Any) -> AsyncIterator[tuple[User, Database]]:
    app = create_app(make_settings(owner_url, **settings))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            user = User(http, f"kept-{time.monotonic_ns()}")
            yield user, app.state.database


async def test_a_read_reuses_the_connection_the_previous_read_kept(owner_url: str) -> None:
    async with serving(owner_url) as (user, database):
        task = await user.create_task()
        assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
        assert database.kept_idle == 1
        kept = database.kept.idle[0]
        for _ in range(3):
            assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
            assert database.kept.idle == [kept]


async def test_a_write_gets_the_kept_connection_when_the_pool_is_full(owner_url: str) -> None:
    # One connection in all: a read keeps it, and the write that follows must not wait
    # DATABASE_POOL_TIMEOUT for it (it would then answer 503).
    settings = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 2}
    async with serving(owner_url, **settings) as (user, database):
        task = await user.create_task()
        assert (await user.get("/api/me/tasks?limit=5")).status_code == 200
        assert database.kept_idle == 1
        started = time.monotonic()
        response = await user.patch(f"/api/me/tasks/{task['id']}", json={"title": "renamed"})
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 1.5
        assert (await user.get(f"/api/me/tasks/{task['id']}")).json()["title"] == "renamed"


async def test_requests_waiting_for_the_pool_get_released_connections(owner_url: str) -> None:
    settings = {"database_pool_size": 2, "database_max_overflow": 0, "database_pool_timeout": 5}
    async with serving(owner_url, **settings) as (user, database):
        task = await user.create_task()
        reads = [user.get(f"/api/me/tasks/{task['id']}") for _ in range(30)]
        writes = [
            user.patch(f"/api/me/tasks/{task['id']}", json={"title": f"t{i}"}) for i in range(10)
        ]
        responses = await asyncio.gather(*reads, *writes)
        assert [r.status_code for r in responses] == [200] * 40
        assert database.kept_idle <= 2


async def test_a_kept_connection_past_the_recycle_age_is_not_reused(owner_url: str) -> None:
    async with serving(owner_url) as (user, database):
        database.engine.sync_engine.pool._recycle = 1  # the setting's floor is 10 s
        task = await user.create_task()
        assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
        old = database.kept.idle[0]
        await asyncio.sleep(1.2)
        assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
        assert database.kept.idle and database.kept.idle[0] is not old


async def test_a_kept_connection_is_not_reused_after_the_pool_was_invalidated(
    owner_url: str,
) -> None:
    async with serving(owner_url) as (user, database):
        task = await user.create_task()
        assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
        old = database.kept.idle[0]
        # What SQLAlchemy does when a statement finds the database gone.
        await asyncio.sleep(0.02)
        database.engine.sync_engine.pool._invalidate(old)
        await asyncio.sleep(0.02)
        assert (await user.get(f"/api/me/tasks/{task['id']}")).status_code == 200
        assert database.kept.idle and database.kept.idle[0] is not old


async def test_stopping_the_app_closes_kept_connections(
    owner_url: str, owner_conn: asyncpg.Connection
) -> None:
    async def backends() -> int:
        count: int = await owner_conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name = 'kept-connections-test'"
        )
        return count

    url = owner_url + ("&" if "?" in owner_url else "?") + "application_name=kept-connections-test"
    async with serving(url) as (user, database):
        task = await user.create_task()
        await asyncio.gather(*(user.get(f"/api/me/tasks/{task['id']}") for _ in range(5)))
        assert database.kept_idle >= 1
        assert await backends() >= 1
    for _ in range(50):
        if await backends() == 0:
            break
        await asyncio.sleep(0.05)
    assert await backends() == 0


async def test_reads_hand_their_connection_to_waiting_reads(owner_url: str) -> None:
    settings = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 5}
    async with serving(owner_url, **settings) as (user, database):
        task = await user.create_task()
        checkouts: list[object] = []
        pool = database.engine.sync_engine.pool
        listener = lambda *args: checkouts.append(args)  # noqa: E731
        event.listen(pool, "checkout", listener)
        try:
            responses = await asyncio.gather(
                *(user.get(f"/api/me/tasks/{task['id']}") for _ in range(20))
            )
        finally:
            event.remove(pool, "checkout", listener)
        assert [r.status_code for r in responses] == [200] * 20
        # The one connection went from read to read, not through the pool each time.
        assert len(checkouts) <= 1


async def test_a_read_that_gets_no_connection_in_time_is_503(owner_url: str) -> None:
    settings = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.3}
    async with serving(owner_url, **settings) as (user, database):
        async with database.user_session(user.id):  # holds the only connection
            response = await user.get("/api/me/tasks/1")
        assert response.status_code == 503
        assert response.json()["code"] == "database_busy"
        assert (await user.get("/api/me/tasks?limit=1")).status_code == 200


@pytest.mark.parametrize("handed_first", [False, True])
async def test_a_cancelled_waiting_read_loses_no_connection(
    owner_url: str, handed_first: bool
) -> None:
    settings = {"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 5}
    async with serving(owner_url, **settings) as (user, database):
        assert (await user.get("/api/me/tasks?limit=1")).status_code == 200
        holder = await database.kept.acquire()
        waiting = asyncio.create_task(database.kept.acquire())
        await asyncio.sleep(0.05)
        assert len(database.kept.waiters) == 1
        # In the same loop turn: the connection handed to the read, the read cancelled
        # (by the request time limit, say), in either order. It is given on, not lost.
        if handed_first:
            await database.kept._hand_on(holder)
            waiting.cancel()
        else:
            waiting.cancel()
            await database.kept._hand_on(holder)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        pool = database.engine.sync_engine.pool
        assert pool.checkedout() == database.kept_idle == 1
        assert (await user.get("/api/me/tasks?limit=1")).status_code == 200
