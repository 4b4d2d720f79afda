"""Database round trips per request, counted on the wire between the app and PostgreSQL.

Budget (issue 7): a read is at most 4 round trips (BEGIN, user context, the query,
COMMIT), a simple write at most 5 (a create may also upsert the profile), whatever the
page size.

How it counts: the app connects through a small TCP proxy that parses the frontend side
of the PostgreSQL protocol and counts every message after which the client waits for
the server: a simple `Query` (asyncpg sends BEGIN and COMMIT that way), a `Sync` (which
closes an extended-protocol exchange such as Bind/Execute) and a `Flush` (asyncpg sends
Parse/Describe/Flush and waits, to prepare a statement new to the connection).
SQLAlchemy's engine events were not used because they miss exactly the costs this
budget is about: the BEGIN the asyncpg adapter sends lazily before the first statement,
the separate prepare round trip of a statement new to a connection, and anything a pool
does when a connection is returned. Wrapping asyncpg would see more but still trusts the
driver's own account; the wire cannot be wrong about what crossed it.

Counts are taken in steady state: each request is sent once to warm the connection's
statement cache (a statement's first use on a connection costs one extra Parse round
trip by design, once per connection), then counted the second time. The pool has a
single connection so the warm-up and the counted request share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import make_settings, make_token
from todo_api.main import create_app

READ_BUDGET = 4
WRITE_BUDGET = 5

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


class WireCounter:
    """A loopback proxy to the database that counts client round trips, with their SQL."""

    def __init__(self, target_url: str) -> None:
        self._target = urlsplit(target_url)
        query = dict(parse_qsl(self._target.query))
        # No hostname means a Unix socket directory in `host=` (the embedded server).
        self._socket_dir = query.get("host") if not self._target.hostname else None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: One entry per round trip: what the client sent before waiting.
        self.trips: list[str] = []
        self.unparseable = False

    @property
    def url(self) -> str:
        """The target URL, pointed at the proxy."""
        query = {k: v for k, v in parse_qsl(self._target.query) if k != "host"}
        userinfo = self._target.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit((self._target.scheme, netloc, self._target.path, urlencode(query), ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stops listening; open connections stay up
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            # Since Python 3.12 this waits for every accepted connection: only after the
            # tasks serving them have closed them.
            await server.wait_closed()

    def reset(self) -> None:
        self.trips.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._socket_dir:
                path = f"{self._socket_dir}/.s.PGSQL.{self._target.port or 5432}"
                server_r, server_w = await asyncio.open_unix_connection(path)
            else:
                host = self._target.hostname or "127.0.0.1"
                server_r, server_w = await asyncio.open_connection(host, self._target.port or 5432)
            await asyncio.gather(
                self._pipe(client_r, server_w, self._frontend_parser()),
                self._pipe(server_r, client_w, None),
            )
        finally:
            client_w.close()
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: Callable[[bytes], None] | None,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if parser is not None:
                    parser(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    def _frontend_parser(self) -> Callable[[bytes], None]:
        """A feed function for one connection's client-to-server byte stream."""
        buffer = bytearray()
        started = False
        statements: dict[str, str] = {}  # prepared statement name -> SQL
        batch: list[str] = []

        def feed(data: bytes) -> None:
            nonlocal started
            buffer.extend(data)
            while True:
                if not started:
                    # Startup-phase messages carry no type byte.
                    if len(buffer) < 8:
                        return
                    length, code = struct.unpack("!ii", buffer[:8])
                    if length > 10_000:
                        self.unparseable = True  # e.g. a TLS handshake after SSLRequest
                        return
                    if len(buffer) < length:
                        return
                    del buffer[:length]
                    started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                    continue
                if len(buffer) < 5:
                    return
                kind = chr(buffer[0])
                (length,) = struct.unpack("!i", buffer[1:5])
                if len(buffer) < 1 + length:
                    return
                body = bytes(buffer[5 : 1 + length])
                del buffer[: 1 + length]
                fields = body.split(b"\0")
                if kind == "Q":
                    self.trips.append(fields[0].decode())
                elif kind == "P":
                    name, sql = fields[0].decode(), fields[1].decode()
                    statements[name] = sql
                    batch.append(f"prepare: {sql}")
                elif kind == "B":
                    batch.append(f"execute: {statements.get(fields[1].decode(), '?')}")
                elif kind in "SH":
                    # Sync ends an exchange; asyncpg also waits after a Flush, which is
                    # how it asks for a new statement's description before binding it.
                    self.trips.append("; ".join(batch) or ("sync" if kind == "S" else "flush"))
                    batch.clear()

        return feed


@pytest.fixture(scope="module")
async def wire(owner_url: str) -> AsyncIterator[WireCounter]:
    counter = WireCounter(owner_url)
    await counter.start()
    try:
        yield counter
    finally:
        await counter.close()


@pytest.fixture(scope="module")
async def api(wire: WireCounter) -> AsyncIterator[httpx.AsyncClient]:
    # One pooled connection: the warm-up and the counted request then share a
    # connection, so the count is the steady state and not a cold statement cache.
    settings = make_settings(wire.url, database_pool_size=1, database_max_overflow=0)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


class Caller:
    def __init__(self, api: httpx.AsyncClient, wire: WireCounter, user_id: str) -> None:
        self.api = api
        self.wire = wire
        self.headers = {"Authorization": f"Bearer {make_token(user_id)}"}

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.api.request(method, url, headers=self.headers, **kwargs)

    async def trips(self, method: str, url: str, **kwargs: Any) -> list[str]:
        """Round trips of the second of two identical requests (the first warms up)."""
        await self.send(method, url, **kwargs)
        self.wire.reset()
        response = await self.send(method, url, **kwargs)
        assert response.status_code < 300, response.text
        assert not self.wire.unparseable, "the connection is encrypted; cannot count"
        return list(self.wire.trips)

    async def new_task(self, title: str = "Counted") -> int:
        response = await self.send("POST", "/api/me/tasks", json={"title": title})
        assert response.status_code == 201, response.text
        task_id: int = response.json()["id"]
        return task_id


@pytest.fixture
async def caller(
    api: httpx.AsyncClient, wire: WireCounter, request: pytest.FixtureRequest
) -> Caller:
    return Caller(api, wire, f"trips-{request.node.name}"[:200])


def _explain(trips: list[str]) -> str:
    return "\n".join(f"  {i}. {trip}" for i, trip in enumerate(trips, 1))


@pytest.fixture
async def caller_with_tasks(caller: Caller) -> Caller:
    for n in range(25):
        await caller.new_task(f"Task {n:02d}")
    return caller


@pytest.mark.parametrize("limit", [1, 20, 200])
async def test_list_first_page_is_within_the_read_budget(
    caller_with_tasks: Caller, limit: int
) -> None:
    trips = await caller_with_tasks.trips("GET", f"/api/me/tasks?limit={limit}")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_list_round_trips_do_not_grow_with_page_size(caller_with_tasks: Caller) -> None:
    small = await caller_with_tasks.trips("GET", "/api/me/tasks?limit=1")
    large = await caller_with_tasks.trips("GET", "/api/me/tasks?limit=200")
    assert len(small) == len(large), _explain(large)


async def test_filtered_sorted_list_is_within_the_read_budget(caller_with_tasks: Caller) -> None:
    trips = await caller_with_tasks.trips("GET", "/api/me/tasks?status=pending&sort=title&limit=20")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_next_page_is_within_the_read_budget(caller_with_tasks: Caller) -> None:
    first = await caller_with_tasks.send("GET", "/api/me/tasks?limit=5")
    next_url = first.headers["Link"].split(">", 1)[0].lstrip("<")
    trips = await caller_with_tasks.trips("GET", next_url)
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_get_one_is_within_the_read_budget(caller: Caller) -> None:
    task_id = await caller.new_task()
    trips = await caller.trips("GET", f"/api/me/tasks/{task_id}")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_profile_read_is_within_the_read_budget(caller: Caller) -> None:
    trips = await caller.trips("GET", "/api/me")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_create_is_within_the_write_budget(caller: Caller) -> None:
    trips = await caller.trips("POST", "/api/me/tasks", json={"title": "Buy milk"})
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_patch_is_within_the_write_budget(caller: Caller) -> None:
    task_id = await caller.new_task()
    trips = await caller.trips("PATCH", f"/api/me/tasks/{task_id}", json={"title": "Renamed"})
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_put_is_within_the_write_budget(caller: Caller) -> None:
    task_id = await caller.new_task()
    body = {"title": "Replaced", "description": None, "completed": True}
    trips = await caller.trips("PUT", f"/api/me/tasks/{task_id}", json=body)
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_complete_is_within_the_write_budget(caller: Caller) -> None:
    task_id = await caller.new_task()
    trips = await caller.trips("PATCH", f"/api/me/tasks/{task_id}/complete")
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_delete_is_within_the_write_budget(caller: Caller) -> None:
    # A delete cannot be repeated, so warm up on one task and count the next.
    await caller.send("DELETE", f"/api/me/tasks/{await caller.new_task()}")
    task_id = await caller.new_task()
    caller.wire.reset()
    response = await caller.send("DELETE", f"/api/me/tasks/{task_id}")
    assert response.status_code == 200
    trips = list(caller.wire.trips)
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_counter_sees_every_statement_of_a_transaction(
    caller: Caller, wire: WireCounter
) -> None:
    # Guards the instrument itself: a get must show BEGIN, the context, the query, COMMIT.
    task_id = await caller.new_task()
    trips = await caller.trips("GET", f"/api/me/tasks/{task_id}")
    assert trips[0].upper().startswith("BEGIN"), _explain(trips)
    assert trips[-1].upper().startswith("COMMIT"), _explain(trips)
    assert any("set_config('app.user_id'" in trip for trip in trips), _explain(trips)
