"""Rate limits: per verified user, per client address for unauthenticated traffic, shared
through Redis by several instances, and failing open when Redis is gone."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import make_settings, make_token
from tests.live_server import serve
from todo_api.auth.principal import Principal
from todo_api.http.ratelimit import MemoryStore, RateLimiter, RedisStore, client_key, decide
from todo_api.main import create_app

USER_LIMIT = 3
ANON_LIMIT = 2
ORIGIN = "https://app.example.com"
REDIS_URL = "redis://127.0.0.1:6379/0"


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub)}"}


def fresh_user() -> str:
    return f"rl-{uuid.uuid4().hex[:12]}"


_addresses = itertools.count(1)


def fresh_address() -> str:
    # Documentation-range addresses, a new one each time so budgets never overlap.
    n = next(_addresses)
    return f"203.0.{n // 250 % 250}.{n % 250 + 1}"


@asynccontextmanager
async def limited_app(owner_url: str, **overrides: Any) -> AsyncIterator[FastAPI]:
    settings = {
        "rate_limit_per_minute": USER_LIMIT,
        "rate_limit_anon_per_minute": ANON_LIMIT,
        **overrides,
    }
    app = create_app(make_settings(owner_url, **settings))
    async with LifespanManager(app):
        yield app


@asynccontextmanager
async def http_from(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def small_app(owner_url: str) -> AsyncIterator[FastAPI]:
    """An instance of its own with small budgets (in memory)."""
    async with limited_app(owner_url) as application:
        yield application


@pytest.fixture
async def http(small_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with http_from(small_app, fresh_address()) as client:
        yield client


def assert_429(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["request_id"] == response.headers["x-request-id"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"


# --- per user ----------------------------------------------------------------------------


async def test_responses_count_down_the_users_budget(http: httpx.AsyncClient) -> None:
    headers = bearer(fresh_user())
    responses = [await http.get("/api/me/tasks", headers=headers) for _ in range(USER_LIMIT)]
    assert [r.status_code for r in responses] == [200] * USER_LIMIT
    assert [r.headers["ratelimit-limit"] for r in responses] == [str(USER_LIMIT)] * USER_LIMIT
    remaining = [int(r.headers["ratelimit-remaining"]) for r in responses]
    assert remaining == list(range(USER_LIMIT - 1, -1, -1))
    assert all(0 < int(r.headers["ratelimit-reset"]) <= 60 for r in responses)


async def test_user_over_budget_gets_429_with_retry_after(http: httpx.AsyncClient) -> None:
    headers = bearer(fresh_user())
    for _ in range(USER_LIMIT):
        await http.get("/api/me/tasks", headers=headers)
    assert_429(await http.get("/api/me/tasks", headers=headers), USER_LIMIT)


async def test_users_have_separate_budgets(http: httpx.AsyncClient) -> None:
    greedy, other = bearer(fresh_user()), bearer(fresh_user())
    for _ in range(USER_LIMIT + 1):
        await http.get("/api/me/tasks", headers=greedy)
    response = await http.get("/api/me/tasks", headers=other)
    assert response.status_code == 200
    assert response.headers["ratelimit-remaining"] == str(USER_LIMIT - 1)


async def test_users_budget_follows_them_across_addresses(small_app: FastAPI) -> None:
    headers = bearer(fresh_user())
    for _ in range(USER_LIMIT):
        async with http_from(small_app, fresh_address()) as http:
            await http.get("/api/me/tasks", headers=headers)
    async with http_from(small_app, fresh_address()) as http:
        assert_429(await http.get("/api/me/tasks", headers=headers), USER_LIMIT)


async def test_429_comes_before_403(http: httpx.AsyncClient) -> None:
    headers = bearer(fresh_user())
    for _ in range(USER_LIMIT):
        await http.get("/api/me/tasks", headers=headers)
    assert_429(await http.get("/api/someone-else/tasks", headers=headers), USER_LIMIT)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/me/tasks/9223372036854775807", None),  # would be 404
        ("GET", "/api/me/nothing-here", None),  # would be 404
        ("POST", "/api/me/tasks", {"title": ""}),  # would be 422
    ],
)
async def test_429_comes_before_404_and_422(
    http: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    headers = bearer(fresh_user())
    for _ in range(USER_LIMIT):
        await http.get("/api/me/tasks", headers=headers)
    assert_429(await http.request(method, path, headers=headers, json=body), USER_LIMIT)


async def test_401_comes_before_429_for_an_exhausted_user(http: httpx.AsyncClient) -> None:
    # The user's budget is spent, but a request that does not prove who it is cannot be
    # charged to them: it is 401 (and counted against the address instead).
    user = fresh_user()
    for _ in range(USER_LIMIT):
        await http.get("/api/me/tasks", headers=bearer(user))
    expired = {"Authorization": f"Bearer {make_token(user, ttl=-3600)}"}
    response = await http.get("/api/me/tasks", headers=expired)
    assert response.status_code == 401
    assert response.headers["ratelimit-limit"] == str(ANON_LIMIT)


# --- per address, before authentication --------------------------------------------------


async def test_bad_token_flood_from_one_address_gets_429(http: httpx.AsyncClient) -> None:
    bad = {"Authorization": "Bearer not-a-jwt"}
    first = [await http.get("/api/me/tasks", headers=bad) for _ in range(ANON_LIMIT)]
    assert [r.status_code for r in first] == [401] * ANON_LIMIT
    assert [r.headers["ratelimit-remaining"] for r in first] == ["1", "0"]
    assert_429(await http.get("/api/me/tasks", headers=bad), ANON_LIMIT)
    assert_429(await http.get("/api/me/tasks"), ANON_LIMIT)  # no token at all


async def test_address_flood_leaves_valid_tokens_from_that_address_alone(
    http: httpx.AsyncClient,
) -> None:
    # Many users can share one address (NAT, office proxy): a neighbour's bad tokens
    # must not lock them out.
    for _ in range(ANON_LIMIT + 1):
        await http.get("/api/me/tasks", headers={"Authorization": "Bearer nope"})
    response = await http.get("/api/me/tasks", headers=bearer(fresh_user()))
    assert response.status_code == 200
    assert response.headers["ratelimit-limit"] == str(USER_LIMIT)


async def test_other_addresses_keep_their_budget(small_app: FastAPI) -> None:
    async with http_from(small_app, fresh_address()) as flooder:
        for _ in range(ANON_LIMIT + 1):
            await flooder.get("/api/me/tasks")
    async with http_from(small_app, fresh_address()) as neighbour:
        response = await neighbour.get("/api/me/tasks")
    assert response.status_code == 401


async def test_unauthenticated_requests_outside_the_api_count_too(
    http: httpx.AsyncClient,
) -> None:
    for _ in range(ANON_LIMIT):
        assert (await http.get("/no-such-page")).status_code == 404
    assert_429(await http.get("/no-such-page"), ANON_LIMIT)


async def test_forwarded_for_header_sent_to_the_app_is_not_believed(
    http: httpx.AsyncClient,
) -> None:
    # Only uvicorn may rewrite the client address, and only for trusted proxies.
    for n in range(ANON_LIMIT):
        await http.get("/api/me/tasks", headers={"X-Forwarded-For": f"198.51.100.{n + 1}"})
    response = await http.get("/api/me/tasks", headers={"X-Forwarded-For": "198.51.100.99"})
    assert_429(response, ANON_LIMIT)


async def test_ipv6_clients_are_counted_per_64_block(small_app: FastAPI) -> None:
    block = f"2001:db8:{uuid.uuid4().int % 0xFFFF:x}:1"
    for n in range(ANON_LIMIT):
        async with http_from(small_app, f"{block}::{n + 1}") as http:
            await http.get("/api/me/tasks")
    async with http_from(small_app, f"{block}::ffff") as same_block:
        assert_429(await same_block.get("/api/me/tasks"), ANON_LIMIT)
    async with http_from(small_app, f"{block.rsplit(':', 1)[0]}:2::1") as next_block:
        assert (await next_block.get("/api/me/tasks")).status_code == 401


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
        ("", "unknown"),
    ],
)
def test_client_key(client: str, key: str) -> None:
    assert client_key({"client": (client, 1)}) == key


def test_missing_client_is_one_shared_key() -> None:
    assert client_key({"client": None}) == "unknown"


# --- exemptions, switches, CORS ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/docs", "/metrics"])
async def test_probes_and_docs_are_never_limited(http: httpx.AsyncClient, path: str) -> None:
    responses = [await http.get(path) for _ in range(ANON_LIMIT + USER_LIMIT + 2)]
    assert {r.status_code for r in responses} == {200}
    assert all("ratelimit-limit" not in r.headers for r in responses)


async def test_rate_limiting_can_be_turned_off(owner_url: str) -> None:
    async with limited_app(owner_url, rate_limit_enabled=False) as app:
        assert app.state.rate_limiter is None
        async with http_from(app, fresh_address()) as http:
            headers = bearer(fresh_user())
            responses = [await http.get("/api/me/tasks", headers=headers) for _ in range(5)]
            anonymous = [await http.get("/api/me/tasks") for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert {r.status_code for r in anonymous} == {401}
    assert all("ratelimit-limit" not in r.headers for r in responses + anonymous)


async def test_429_is_readable_by_the_configured_frontend(http: httpx.AsyncClient) -> None:
    headers = {**bearer(fresh_user()), "Origin": ORIGIN}
    for _ in range(USER_LIMIT):
        await http.get("/api/me/tasks", headers=headers)
    response = await http.get("/api/me/tasks", headers=headers)
    assert_429(response, USER_LIMIT)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= exposed


# --- the algorithm, on a clock the test controls ----------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_budget_refills_one_request_per_interval() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    decisions = [await store.hit("k", 6, 60) for _ in range(7)]
    assert [d.allowed for d in decisions if d] == [True] * 6 + [False]
    denied = decisions[-1]
    assert denied is not None and denied.retry_after == 10
    clock.now += 9.9
    assert (await store.hit("k", 6, 60)).allowed is False  # type: ignore[union-attr]
    clock.now += 0.1
    refilled = await store.hit("k", 6, 60)
    assert refilled is not None and refilled.allowed and refilled.remaining == 0
    clock.now += 60
    full = await store.hit("k", 6, 60)
    assert full is not None and full.remaining == 5 and full.reset == 10


async def test_denied_requests_do_not_push_the_refill_back() -> None:
    # A client hammering while limited must still get a request through on schedule.
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    for _ in range(2):
        await store.hit("k", 2, 60)
    for _ in range(100):
        await store.hit("k", 2, 60)
    clock.now += 30
    decision = await store.hit("k", 2, 60)
    assert decision is not None and decision.allowed


async def test_memory_store_stays_bounded() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=100, clock=clock)
    sizes = []
    for n in range(1000):
        await store.hit(f"one-off-{n}", 3, 60)
        sizes.append(len(store))
    assert max(sizes) <= 100


async def test_drained_buckets_are_dropped_first() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=100, clock=clock)
    for n in range(100):
        await store.hit(f"old-{n}", 3, 60)
    clock.now += 61  # every old bucket has drained: it carries no information
    await store.hit("new", 3, 60)
    assert len(store) == 1


async def test_recently_used_key_survives_eviction() -> None:
    clock = FakeClock()
    store = MemoryStore(max_keys=100, clock=clock)
    for _ in range(3):
        await store.hit("busy", 3, 60)
    for n in range(500):
        await store.hit(f"one-off-{n}", 3, 60)
        # The busy client keeps coming back (and keeps being refused).
        busy = await store.hit("busy", 3, 60)
        assert busy is not None and not busy.allowed


# --- Redis: one budget for several instances ---------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis that `.ci/run` starts: in CI these tests fail without it; on a developer
    machine with no Redis they are reported as skipped (never as passed)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not running at {REDIS_URL} ({error}); `.ci/run` starts it")
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own, so runs and tests never share a budget."""
    value = f"todo-api-test:{uuid.uuid4().hex}"
    yield value
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{value}:*"):
        client.delete(key)
    client.close()


async def test_two_instances_share_one_budget_through_redis(
    owner_url: str, redis_url: str, prefix: str
) -> None:
    shared = {"redis_url": redis_url, "rate_limit_key_prefix": prefix}
    headers = bearer(fresh_user())
    async with limited_app(owner_url, **shared) as one, limited_app(owner_url, **shared) as two:
        assert isinstance(one.state.rate_limiter.store, RedisStore)
        async with http_from(one, fresh_address()) as a, http_from(two, fresh_address()) as b:
            statuses = [
                (await client.get("/api/me/tasks", headers=headers)).status_code
                for client in (a, b, a)
            ]
            remaining = (await a.get("/api/me/tasks", headers=headers)).headers
            refused = await b.get("/api/me/tasks", headers=headers)
    # In memory, each instance would have allowed USER_LIMIT requests of its own.
    assert statuses == [200, 200, 200]
    assert remaining["ratelimit-remaining"] == "0"
    assert_429(refused, USER_LIMIT)


async def test_address_budget_is_shared_through_redis_too(
    owner_url: str, redis_url: str, prefix: str
) -> None:
    shared = {"redis_url": redis_url, "rate_limit_key_prefix": prefix}
    address = fresh_address()
    async with (
        limited_app(owner_url, **shared) as one,
        limited_app(owner_url, **shared) as two,
        http_from(one, address) as a,
        http_from(two, address) as b,
    ):
        first = [(await c.get("/api/me/tasks")).status_code for c in (a, b)]
        third = await a.get("/api/me/tasks")
    assert first == [401, 401]
    assert_429(third, ANON_LIMIT)


async def test_separate_prefixes_are_separate_budgets(
    owner_url: str, redis_url: str, prefix: str
) -> None:
    headers = bearer(fresh_user())
    async with (
        limited_app(owner_url, redis_url=redis_url, rate_limit_key_prefix=prefix) as one,
        http_from(one, fresh_address()) as a,
    ):
        for _ in range(USER_LIMIT + 1):
            await a.get("/api/me/tasks", headers=headers)
    other_prefix = prefix + "-other"
    async with (
        limited_app(owner_url, redis_url=redis_url, rate_limit_key_prefix=other_prefix) as two,
        http_from(two, fresh_address()) as b,
    ):
        response = await b.get("/api/me/tasks", headers=headers)
    assert response.status_code == 200


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


async def test_unreachable_redis_lets_requests_through_and_says_so(
    owner_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="todo_api.http.ratelimit")
    down = f"redis://127.0.0.1:{closed_port()}/0"
    headers = bearer(fresh_user())
    async with limited_app(owner_url, redis_url=down) as app:
        limiter: RateLimiter = app.state.rate_limiter
        assert not limiter.degraded
        async with http_from(app, fresh_address()) as http:
            responses = [
                await http.get("/api/me/tasks", headers=headers) for _ in range(USER_LIMIT * 4)
            ]
            anonymous = [await http.get("/api/me/tasks") for _ in range(ANON_LIMIT * 4)]
        assert limiter.degraded
    assert {r.status_code for r in responses} == {200}
    assert {r.status_code for r in anonymous} == {401}
    assert all("ratelimit-limit" not in r.headers for r in responses)
    warnings = [r for r in caplog.records if r.name == "todo_api.http.ratelimit"]
    assert len(warnings) == 1, "the outage must be logged once, not once per request"
    assert "unavailable" in warnings[0].getMessage()


class RedisProcess:
    """A Redis server of the test's own, which it may stop and start again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.port = closed_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.args += ["--save", "", "--appendonly", "no"]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed argv
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            # Bounded wait for start-up; not a timing assertion.
            for _ in range(1000):
                assert self.process.poll() is None, "redis-server exited"
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.01)
            raise AssertionError("redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


async def test_redis_outage_and_recovery(own_redis: RedisProcess) -> None:
    clock = FakeClock()
    prefix = f"todo-api-test:{uuid.uuid4().hex}:"
    store = RedisStore(own_redis.url, prefix, cooldown=5, clock=clock)
    limiter = RateLimiter(store, per_user=2, per_address=2)
    alice = Principal(user_id="alice", email=None, name=None, claims={})
    try:
        assert (await limiter.hit_user(alice)) is not None
        own_redis.stop()
        assert await limiter.hit_user(alice) is None  # let through
        assert limiter.degraded
        own_redis.start()
        # Within the cool-down Redis is not even tried: an outage adds no latency.
        assert await limiter.hit_user(alice) is None
        clock.now += 5
        decision = await limiter.hit_user(alice)
        assert decision is not None and decision.allowed and decision.remaining == 1
        assert not limiter.degraded
    finally:
        await limiter.aclose()


async def test_limits_hold_under_concurrent_requests(
    owner_url: str, redis_url: str, prefix: str
) -> None:
    headers = bearer(fresh_user())
    async with (
        limited_app(owner_url, redis_url=redis_url, rate_limit_key_prefix=prefix) as app,
        http_from(app, fresh_address()) as http,
    ):
        responses = await asyncio.gather(
            *(http.get("/api/me/tasks", headers=headers) for _ in range(USER_LIMIT * 3))
        )
    assert sorted(r.status_code for r in responses) == [200] * USER_LIMIT + [429] * (USER_LIMIT * 2)


# --- behind a proxy: uvicorn decides the client address ---------------------------------


@pytest.mark.parametrize(("trusted", "separate"), [("127.0.0.1", True), ("10.9.9.9", False)])
async def test_forwarded_address_is_used_only_from_a_trusted_proxy(
    owner_url: str, trusted: str, separate: bool
) -> None:
    app = create_app(make_settings(owner_url, rate_limit_anon_per_minute=ANON_LIMIT))
    with serve(app, proxy_headers=True, forwarded_allow_ips=trusted) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            prefix = f"198.51.{uuid.uuid4().int % 250}"
            for n in range(ANON_LIMIT):
                await http.get("/api/me/tasks", headers={"X-Forwarded-For": f"{prefix}.{n}"})
            last = await http.get("/api/me/tasks", headers={"X-Forwarded-For": f"{prefix}.99"})
    # From a trusted proxy each forwarded address has its own budget; from anyone else
    # the header is ignored and every request counts against the peer's address.
    assert last.status_code == (401 if separate else 429)


@pytest.mark.parametrize("allowed", [True, False])
def test_raw_headers_are_the_headers_as_asgi_pairs(allowed: bool) -> None:
    decision = decide(allowed, 42_500_000.0, 60, 60_000_000.0)
    expected = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
    assert decision.raw_headers() == expected
    assert (b"retry-after" in dict(decision.raw_headers())) is not allowed
