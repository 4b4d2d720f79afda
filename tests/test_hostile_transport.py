"""Hostile input at the transport and auth layers, through HTTP: token claims that are
not valid Unicode text, preconditions on every write, and (in the modules named at the
end) header limits, stored idempotent responses and the URLs the API builds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import User, make_settings, make_token
from tests.live_server import serve
from tests.test_logging import access_lines, rendered
from tests.test_ratelimit import REDIS_URL, redis_url  # noqa: F401 (a fixture)
from tests.test_shutdown import ServerProcess
from todo_api.main import create_app
from todo_api.observability.logs import JsonFormatter
from todo_api.services import clock

LONE_SURROGATE = "\ud800"


def bearer(sub: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub, **claims)}"}


# --- token claims that are not valid Unicode text ---------------------------------------


@pytest.fixture(scope="module")
def live(owner_url: str) -> Iterator[str]:
    """The app under a real uvicorn server: an encoding error there resets the
    connection instead of answering."""
    with serve(create_app(make_settings(owner_url))) as base_url:
        yield base_url


@pytest.mark.parametrize("sub", [LONE_SURROGATE, f"user-{LONE_SURROGATE}-x", "\udfff"])
def test_sub_that_is_not_unicode_text_is_401(live: str, sub: str) -> None:
    response = httpx.get(f"{live}/api/me/tasks", headers=bearer(sub))
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "token_subject_invalid"
    assert "not valid Unicode text" in response.headers["www-authenticate"]


async def test_sub_that_is_not_unicode_text_is_401_with_the_redis_limiter(
    owner_url: str,
    redis_url: str,  # noqa: F811 (the fixture)
) -> None:
    prefix = f"todo-api-test:{uuid.uuid4().hex}"
    settings = make_settings(
        owner_url, redis_url=redis_url, rate_limit_key_prefix=prefix, rate_limit_anon_per_minute=2
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answers = [
                await http.get("/api/me/tasks", headers=bearer(LONE_SURROGATE)) for _ in range(3)
            ]
        assert not app.state.rate_limiter.degraded
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    finally:
        client.close()
    # Refused as unauthenticated, and counted against the client address in Redis.
    assert [r.status_code for r in answers] == [401, 401, 429]
    assert answers[0].json()["code"] == "token_subject_invalid"


async def test_sub_that_is_not_unicode_text_gets_an_access_line(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient
) -> None:
    caplog.set_level(logging.INFO, logger="todo_api")
    response = await client.get("/api/me/tasks", headers=bearer(LONE_SURROGATE))
    assert response.status_code == 401
    (line,) = [a for a in access_lines(caplog.records) if a["status"] == 401]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["user_hash"] is None
    assert all(json.loads(text) for text in rendered(caplog.records))


@pytest.mark.parametrize("claim", ["email", "name"])
def test_profile_claims_that_are_not_unicode_text_are_dropped(live: str, claim: str) -> None:
    sub = f"user-{uuid.uuid4().hex[:12]}"
    claims = {"email": "ok@example.com", "name": "Ok", claim: f"x{LONE_SURROGATE}y"}
    headers = bearer(sub, **claims)
    profile = httpx.get(f"{live}/api/me", headers=headers)
    assert profile.status_code == 200, profile.text
    assert profile.json()[claim] is None
    kept = "name" if claim == "email" else "email"
    assert profile.json()[kept] == claims[kept]
    # Writes by this principal reach the database and are logged as any other.
    updated = httpx.patch(f"{live}/api/me", headers=headers, json={"display_name": "D"})
    assert updated.status_code == 200, updated.text
    assert updated.json()[claim] is None
    created = httpx.post(f"{live}/api/me/tasks", headers=headers, json={"title": "T"})
    assert created.status_code == 201, created.text


async def test_profile_claims_that_are_not_unicode_text_leave_log_lines_whole(
    caplog: pytest.LogCaptureFixture, client: httpx.AsyncClient
) -> None:
    caplog.set_level(logging.INFO, logger="todo_api")
    user = User(client, f"user-{uuid.uuid4().hex[:12]}", name=LONE_SURROGATE)
    response = await user.get("/api/me")
    assert response.status_code == 200, response.text
    (line,) = [a for a in access_lines(caplog.records) if a["route"] == "/api/{user_id}"]
    assert line["status"] == 200 and line["user_hash"]
    assert all(json.loads(text) for text in rendered(caplog.records))


def test_a_log_line_carrying_a_lone_surrogate_is_written_escaped() -> None:
    record = logging.makeLogRecord({"name": "todo_api", "msg": "m", "detail": LONE_SURROGATE})
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "m"
    assert line["detail"] == LONE_SURROGATE


# --- REQUIRE_IF_MATCH covers the dismiss route --------------------------------------------


@pytest.fixture(scope="module")
async def strict_http(owner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(make_settings(owner_url, require_if_match=True))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def _task_with_reminder(user: User) -> dict[str, Any]:
    remind_at = clock.now().replace(microsecond=0).isoformat()
    return await user.create_task("Call back", remind_at=remind_at)


async def test_dismiss_without_if_match_is_428_when_required(
    strict_http: httpx.AsyncClient,
) -> None:
    user = User(strict_http, f"user-{uuid.uuid4().hex[:12]}")
    task = await _task_with_reminder(user)
    response = await user.post(f"/api/me/reminders/{task['id']}/dismiss")
    assert response.status_code == 428, response.text
    assert response.json()["code"] == "precondition_required"
    reread = await user.get(f"/api/me/tasks/{task['id']}")
    assert reread.json()["reminder_dismissed_at"] is None


async def test_dismiss_with_a_stale_if_match_is_412(strict_http: httpx.AsyncClient) -> None:
    user = User(strict_http, f"user-{uuid.uuid4().hex[:12]}")
    task = await _task_with_reminder(user)
    stale = f'"{task["version"] + 1}"'
    response = await user.post(
        f"/api/me/reminders/{task['id']}/dismiss", headers={"If-Match": stale}
    )
    assert response.status_code == 412, response.text
    assert response.json()["current"]["reminder_dismissed_at"] is None


async def test_dismiss_with_the_current_if_match_dismisses(
    strict_http: httpx.AsyncClient,
) -> None:
    user = User(strict_http, f"user-{uuid.uuid4().hex[:12]}")
    task = await _task_with_reminder(user)
    response = await user.post(
        f"/api/me/reminders/{task['id']}/dismiss", headers={"If-Match": f'"{task["version"]}"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["reminder_dismissed_at"] is not None
    assert response.headers["etag"] == f'"{task["version"] + 1}"'


async def test_dismiss_of_another_users_task_with_if_match_is_404(
    strict_http: httpx.AsyncClient,
) -> None:
    owner = User(strict_http, f"user-{uuid.uuid4().hex[:12]}")
    other = User(strict_http, f"user-{uuid.uuid4().hex[:12]}")
    task = await _task_with_reminder(owner)
    response = await other.post(
        f"/api/me/reminders/{task['id']}/dismiss", headers={"If-Match": f'"{task["version"]}"'}
    )
    assert response.status_code == 404, response.text


# --- header limits in the server `todo-api serve` runs -------------------------------------

HEADER_TIMEOUT = 1.0
#: Guards against a hung test, never a measurement: a server that keeps a stalled
#: connection open makes the read below return nothing and the test fail.
HANG_GUARD = 30.0


@pytest.fixture(scope="module")
def limited(owner_url: str) -> Iterator[str]:
    settings = make_settings(owner_url, header_timeout_seconds=HEADER_TIMEOUT)
    with serve(create_app(settings)) as base_url:
        yield base_url


async def _connect(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(base_url)
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), HANG_GUARD)


async def test_a_connection_that_never_finishes_its_headers_is_closed(limited: str) -> None:
    reader, writer = await _connect(limited)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # no blank line: never done
        await writer.drain()
        assert await _closed_by_server(reader) == b""
    finally:
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed(limited: str) -> None:
    reader, writer = await _connect(limited)
    try:
        assert await _closed_by_server(reader) == b""
    finally:
        writer.close()


async def test_trickled_headers_do_not_keep_a_connection_open(limited: str) -> None:
    reader, writer = await _connect(limited)
    eof = asyncio.ensure_future(reader.read())
    sent = 0
    try:
        # One byte every 50 ms: each arrives well within the timeout, the whole head never.
        for byte in (b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"v" * 2000)[: int(HANG_GUARD / 0.05)]:
            if eof.done():
                break
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(0.05)
        assert eof.done(), "the server kept the trickling connection open"
        assert eof.result() == b""
    finally:
        eof.cancel()
        writer.close()


async def test_the_next_request_on_a_kept_alive_connection_has_the_timeout_too(
    limited: str,
) -> None:
    reader, writer = await _connect(limited)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(
                b":"
            )[1]
        )
        await reader.readexactly(length)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request stalls
        await writer.drain()
        assert await _closed_by_server(reader) == b""
    finally:
        writer.close()


async def test_stalled_connections_do_not_stop_other_clients(limited: str) -> None:
    stalled = [await _connect(limited) for _ in range(50)]
    try:
        for _, writer in stalled:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        async with httpx.AsyncClient(base_url=limited) as http:
            answers = await asyncio.gather(*(http.get("/healthz") for _ in range(20)))
        assert [r.status_code for r in answers] == [200] * 20
        for reader, _ in stalled:
            assert await _closed_by_server(reader) == b""
    finally:
        for _, writer in stalled:
            writer.close()


def test_headers_up_to_the_cap_are_served(limited: str) -> None:
    filler = "v" * (60 * 1024)
    response = httpx.get(f"{limited}/healthz", headers={"X-Filler": filler})
    assert response.status_code == 200


@pytest.mark.parametrize("split", [0, 1, 2, 3], ids=lambda n: f"end-of-head-split-{n}")
async def test_a_body_after_a_small_head_is_not_counted_as_head(limited: str, split: int) -> None:
    body = json.dumps({"title": "t", "description": "d" * 1000, "x": "y" * 300_000}).encode()
    head = (
        b"POST /api/me/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + make_token("body-user").encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    # The blank line that ends the head arrives in two reads, the body right after it.
    cut = len(head) - split
    reader, writer = await _connect(limited)
    try:
        writer.write(head[:cut])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(head[cut:] + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
    finally:
        writer.close()
    # Unknown field `x`: the request reached the application.
    assert answer.startswith(b"HTTP/1.1 422"), answer


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * (16 * 1024 * 1024),
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Many: v\r\n" * 10_000 + b"\r\n",
        b"GET /healthz?" + b"q" * (128 * 1024) + b" HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["one-16MiB-header-never-finished", "ten-thousand-headers", "128KiB-request-line"],
)
async def test_a_request_head_over_the_cap_is_431(limited: str, head: bytes) -> None:
    reader, writer = await _connect(limited)
    try:
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await _closed_by_server(reader)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in headers
    assert json.loads(body)["code"] == "headers_too_large"


def test_todo_api_serve_runs_with_the_header_limits(owner_url: str) -> None:
    process = ServerProcess(owner_url, HEADER_TIMEOUT_SECONDS="1").wait_ready()
    try:

        async def check() -> None:
            reader, writer = await _connect(process.url)
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                await writer.drain()
                assert await _closed_by_server(reader) == b""
            finally:
                writer.close()

        asyncio.run(check())
        big = httpx.get(f"{process.url}/healthz", headers={"X-Big": "v" * (70 * 1024)})
        assert big.status_code == 431
        assert big.json()["code"] == "headers_too_large"
    finally:
        process.stop()
