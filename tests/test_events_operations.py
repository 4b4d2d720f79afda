"""Event streams under operations: caps, the request time limit, a database cut, the
poll fallback behind PgBouncer, and SIGTERM with streams open."""

from __future__ import annotations

import asyncio
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, make_token
from tests.faults import FaultProxy
from tests.live_server import serve
from tests.sse import HANG_GUARD, EventReader, open_stream
from tests.test_pgbouncer import pgbouncer_url  # noqa: F401 (a fixture)
from tests.test_ratelimit import redis_url  # noqa: F401 (a fixture)
from tests.test_shutdown import ServerProcess
from todo_api.main import create_app

_GRACE = {"timeout_graceful_shutdown": 2}


class ProxyThread:
    """A `FaultProxy` on its own event loop in a thread: the servers under test reach
    the database through it even while the test's own loop is blocked (starting or
    stopping a live server blocks it)."""

    def __init__(self, target_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = FaultProxy(target_url)
        self._run(self.proxy.start())

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    @property
    def url(self) -> str:
        return self.proxy.url

    def cut(self) -> None:
        self._run(self.proxy.cut())

    def restore(self) -> None:
        self._run(self.proxy.restore())

    def close(self) -> None:
        self._run(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def _headers(user: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user or f'ops-{uuid.uuid4().hex[:12]}')}"}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as client:
        yield client


async def _ready(reader: EventReader) -> None:
    assert reader.response.status_code == 200, reader.response
    event = await reader.next()
    assert event is not None
    assert event.event == "ready"


async def _create(http: httpx.AsyncClient, base: str, headers: dict[str, str], title: str) -> int:
    response = await http.post(f"{base}/api/me/tasks", json={"title": title}, headers=headers)
    assert response.status_code == 201, response.text
    task_id: int = response.json()["id"]
    return task_id


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


async def _until_listening(http: httpx.AsyncClient, base: str) -> None:
    """Wait until the instance's listener has connected (it does so in the background
    after start-up), so that a cut afterwards is one it notices."""
    while True:
        metrics = (await http.get(f"{base}/metrics")).text
        if _metric(metrics, "todo_api_events_listener_up") == 1:
            return
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def tight(owner_url: str) -> Iterator[str]:
    """One stream per user, a one-second request time limit, frequent keep-alives."""
    settings = make_settings(
        owner_url,
        events_max_streams_per_user=1,
        request_timeout_seconds=1,
        events_keepalive_seconds=0.2,
    )
    with serve(create_app(settings), **_GRACE) as base:
        yield base


async def test_streams_beyond_the_per_user_cap_are_429(tight: str, http: httpx.AsyncClient) -> None:
    headers = _headers()
    async with open_stream(http, f"{tight}/api/me/events", headers) as reader:
        await _ready(reader)
        refused = await http.get(f"{tight}/api/me/events", headers=headers)
        other_user = _headers()
        async with open_stream(http, f"{tight}/api/me/events", other_user) as unaffected:
            await _ready(unaffected)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "too_many_streams"
    assert int(refused.headers["Retry-After"]) > 0
    # Once the first stream is closed its place is given back (the server notices the
    # departure at its next write, a keep-alive at the latest).
    while True:
        async with open_stream(http, f"{tight}/api/me/events", headers) as again:
            if again.response.status_code == 200:
                await _ready(again)
                break
            assert again.response.status_code == 429
        await asyncio.sleep(0.1)


async def test_streams_beyond_the_per_worker_cap_are_503(
    owner_url: str, http: httpx.AsyncClient
) -> None:
    settings = make_settings(owner_url, events_max_streams_per_worker=2)
    with serve(create_app(settings), **_GRACE) as base:
        async with (
            open_stream(http, f"{base}/api/me/events", _headers()) as first,
            open_stream(http, f"{base}/api/me/events", _headers()) as second,
        ):
            await _ready(first)
            await _ready(second)
            refused = await http.get(f"{base}/api/me/events", headers=_headers())
    assert refused.status_code == 503
    assert refused.json()["code"] == "stream_capacity"
    assert int(refused.headers["Retry-After"]) > 0


async def test_a_stream_outlives_the_request_time_limit_and_keeps_alive(
    tight: str, http: httpx.AsyncClient
) -> None:
    headers = _headers()
    async with open_stream(http, f"{tight}/api/me/events", headers) as reader:
        await _ready(reader)
        await asyncio.sleep(1.5)  # past REQUEST_TIMEOUT_SECONDS=1
        task_id = await _create(http, tight, headers, "after the time limit")
        (event,) = await reader.changes(1)
    assert event.json()["id"] == task_id
    assert "keep-alive" in reader.comments


async def test_a_database_cut_during_a_stream_is_caught_up_after(
    owner_url: str, http: httpx.AsyncClient
) -> None:
    proxy = ProxyThread(owner_url)
    headers = _headers()
    try:
        with (
            serve(create_app(make_settings(owner_url)), **_GRACE) as a,
            serve(create_app(make_settings(proxy.url)), **_GRACE) as b,
        ):
            await _until_listening(http, b)
            async with open_stream(http, f"{b}/api/me/events", headers) as reader:
                await _ready(reader)
                proxy.cut()
                # Written through A while B cannot reach the database at all.
                during = await _create(http, a, headers, "written during the cut")
                proxy.restore()
                (event,) = await reader.changes(1)
                metrics = (await http.get(f"{b}/metrics")).text
    finally:
        proxy.close()
    assert event.json()["id"] == during
    assert _metric(metrics, "todo_api_events_listener_losses_total") >= 1
    assert _metric(metrics, "todo_api_events_listener_up") == 1
    assert _metric(metrics, "todo_api_events_open_streams") == 1


async def test_behind_pgbouncer_one_poll_per_worker_delivers_changes(
    owner_url: str,
    pgbouncer_url: str,  # noqa: F811 (the fixture imported above)
    http: httpx.AsyncClient,
) -> None:
    pooled = make_settings(pgbouncer_url, database_pgbouncer=True)
    headers = _headers()
    with (
        serve(create_app(make_settings(owner_url)), **_GRACE) as a,
        serve(create_app(pooled), **_GRACE) as b,
    ):
        metrics = (await http.get(f"{b}/metrics")).text
        async with open_stream(http, f"{b}/api/me/events", headers) as reader:
            await _ready(reader)
            created = await _create(http, a, headers, "seen by the poll")
            patched = await http.patch(
                f"{a}/api/me/tasks/{created}", json={"title": "polled again"}, headers=headers
            )
            assert patched.status_code == 200
            events = await reader.changes(1)
            while events[-1].json()["version"] < 2:
                events += await reader.changes(1)
    assert 'todo_api_events_listener_up{mode="poll"}' in metrics
    assert events[0].json()["id"] == created
    assert events[-1].json()["object"]["title"] == "polled again"


async def test_with_redis_changes_fan_out_by_pub_sub_and_survive_a_redis_cut(
    owner_url: str,
    redis_url: str,  # noqa: F811 (the fixture imported above)
    http: httpx.AsyncClient,
) -> None:
    proxy = ProxyThread(redis_url)
    headers = _headers()
    try:
        with (
            serve(create_app(make_settings(owner_url, redis_url=redis_url)), **_GRACE) as a,
            serve(create_app(make_settings(owner_url, redis_url=proxy.url)), **_GRACE) as b,
        ):
            await _until_listening(http, b)
            async with open_stream(http, f"{b}/api/me/events", headers) as reader:
                await _ready(reader)
                first = await _create(http, a, headers, "published through Redis")
                (published,) = await reader.changes(1)
                proxy.cut()
                # Published while B's subscription is gone: pub/sub keeps nothing for it.
                during = await _create(http, a, headers, "written during the Redis cut")
                proxy.restore()
                (caught_up,) = await reader.changes(1)
                metrics = (await http.get(f"{b}/metrics")).text
    finally:
        proxy.close()
    assert published.json()["id"] == first
    assert caught_up.json()["id"] == during
    assert 'todo_api_events_listener_up{mode="redis"} 1.0' in metrics
    assert _metric(metrics, "todo_api_events_listener_losses_total") >= 1


async def test_sigterm_ends_open_streams_and_the_server_exits_cleanly(owner_url: str) -> None:
    server = ServerProcess(owner_url).wait_ready()
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=HANG_GUARD)) as http,
            open_stream(http, f"{server.url}/api/me/events", _headers()) as reader,
        ):
            await _ready(reader)
            server.process.send_signal(signal.SIGTERM)
            end = await reader.next()
    finally:
        code = server.stop()
    assert end is None
    # Ended by the server on purpose, telling the client to reconnect, rather than cut
    # off when the graceful period ran out.
    assert any("shutting down" in comment for comment in reader.comments)
    assert code == 0
