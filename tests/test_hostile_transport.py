"""Hostile input at the transport and auth layers, through HTTP: token claims that are
not valid Unicode text, preconditions on every write, and (in the modules named at the
end) header limits, stored idempotent responses and the URLs the API builds."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import User, make_settings, make_token
from tests.live_server import serve
from tests.test_logging import access_lines, rendered
from tests.test_ratelimit import REDIS_URL, redis_url  # noqa: F401 (a fixture)
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
