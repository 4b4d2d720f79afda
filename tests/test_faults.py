"""Real database faults: the connection is cut, slowed and restored under the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import count_tasks, make_settings, make_token
from tests.faults import FaultProxy
from todo_api.main import create_app


@pytest.fixture
async def proxy(owner_url: str) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(owner_url)
    await fault_proxy.start()
    try:
        yield fault_proxy
    finally:
        await fault_proxy.close()


@pytest.fixture
async def api(proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(proxy.url, database_connect_timeout=2, database_pool_timeout=2)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=15) as c:
            yield c


async def test_cut_gives_503_then_recovers_without_losing_writes(
    api: httpx.AsyncClient, proxy: FaultProxy, owner_conn: asyncpg.Connection
) -> None:
    user = "fault-user"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    acknowledged = 0

    async def write(title: str) -> httpx.Response:
        nonlocal acknowledged
        response = await api.post("/api/me/tasks", json={"title": title}, headers=headers)
        if response.status_code == 201:
            acknowledged += 1
        return response

    assert (await write("before")).status_code == 201

    await proxy.cut()
    started = time.monotonic()
    during = await asyncio.gather(
        *(write(f"during {i}") for i in range(10)),
        *(api.get("/api/me/tasks", headers=headers) for _ in range(10)),
    )
    worst = time.monotonic() - started
    ready = await api.get("/readyz")
    assert {r.status_code for r in during} == {503}, [
        r.text for r in during if r.status_code != 503
    ]
    assert all(r.headers["content-type"] == "application/problem+json" for r in during)
    assert all("retry-after" in r.headers for r in during)
    assert ready.status_code == 503

    await proxy.restore()
    restored = time.monotonic()
    while True:
        response = await api.get("/api/me/tasks", headers=headers)
        if response.status_code == 200:
            break
        assert response.status_code == 503
        assert time.monotonic() - restored < 15, "the service did not recover by itself"
        await asyncio.sleep(0.1)
    recovery = time.monotonic() - restored
    assert (await write("after")).status_code == 201
    print(
        f"worst latency during the cut: {worst:.2f} s; first success {recovery:.2f} s after restore"
    )

    assert await count_tasks(owner_conn, user) == acknowledged


async def test_slow_database_still_answers(api: httpx.AsyncClient, proxy: FaultProxy) -> None:
    headers = {"Authorization": f"Bearer {make_token('slow-user')}"}
    proxy.delay = 0.05
    response = await api.post("/api/me/tasks", json={"title": "patience"}, headers=headers)
    proxy.delay = 0
    assert response.status_code == 201


@pytest.fixture
async def slow_api(proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(proxy.url, request_timeout_seconds=0.5)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=15) as c:
            yield c


async def test_request_over_its_time_limit_gets_503(
    slow_api: httpx.AsyncClient, proxy: FaultProxy
) -> None:
    headers = {"Authorization": f"Bearer {make_token('timeout-user')}"}
    proxy.delay = 0.4  # every round trip now takes longer than the whole budget
    response = await slow_api.get("/api/me/tasks", headers=headers)
    proxy.delay = 0
    assert response.status_code == 503
    assert response.json()["code"] == "request_timeout"
    assert (await slow_api.get("/api/me/tasks", headers=headers)).status_code == 200


_SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(1);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.title = 'slow commit') EXECUTE FUNCTION slow_commit();
"""


async def test_time_limit_never_cancels_a_commit_in_flight(
    slow_api: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    user = "commit-user"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    await owner_conn.execute(_SLOW_COMMIT)
    try:
        response = await slow_api.post(
            "/api/me/tasks", json={"title": "slow commit"}, headers=headers
        )
    finally:
        await owner_conn.execute(
            "DROP TRIGGER IF EXISTS slow_commit ON tasks; DROP FUNCTION IF EXISTS slow_commit()"
        )
    assert response.status_code == 201
    assert await count_tasks(owner_conn, user) == 1
