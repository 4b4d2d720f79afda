"""Idempotency-Key on POST: stored responses, replays, reuse, concurrency, expiry, and a
key honoured by another instance of the service."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

from tests.conftest import User, make_settings
from tests.routes.support import assert_problem, create, listing
from todo_api.main import create_app


def key() -> dict[str, str]:
    return {"Idempotency-Key": f'"{uuid.uuid4()}"'}


async def test_a_retry_gets_the_stored_response_and_creates_nothing(alice: User) -> None:
    headers = key()
    first = await alice.post("/api/me/tasks", json={"title": "once"}, headers=headers)
    again = await alice.post("/api/me/tasks", json={"title": "once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotency-Replayed"] == "true"
    assert "Idempotency-Replayed" not in first.headers
    assert [t["title"] for t in await listing(alice)] == ["once"]


async def test_the_same_key_with_another_body_is_422(alice: User) -> None:
    headers = key()
    await alice.post("/api/me/tasks", json={"title": "one"}, headers=headers)
    other = await alice.post("/api/me/tasks", json={"title": "two"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    elsewhere = await alice.post("/api/me/lists", json={"name": "one"}, headers=headers)
    assert_problem(elsewhere, 422, "idempotency_key_reused")


async def test_keys_are_per_user(alice: User, bob: User) -> None:
    headers = key()
    await alice.post("/api/me/tasks", json={"title": "t"}, headers=headers)
    theirs = await bob.post("/api/me/tasks", json={"title": "t"}, headers=headers)
    assert theirs.status_code == 201
    assert "Idempotency-Replayed" not in theirs.headers


async def test_a_failed_request_is_not_stored(alice: User) -> None:
    headers = key()
    body = {"title": "t", "list_id": 2**62}
    failed = await alice.post("/api/me/tasks", json=body, headers=headers)
    assert_problem(failed, 422, "list_not_found")
    again = await alice.post("/api/me/tasks", json=body, headers=headers)
    assert "Idempotency-Replayed" not in again.headers


async def test_invalid_keys_are_422(alice: User) -> None:
    for bad in ('""', "tab\there", "x" * 256, "é".encode()):
        response = await alice.post(
            "/api/me/tasks", json={"title": "t"}, headers={"Idempotency-Key": bad}
        )
        assert response.status_code == 422, (bad, response.text)


async def test_every_post_honours_the_key(alice: User) -> None:
    task = await create(alice, remind_at="2020-01-01T00:00:00Z")
    posts = [
        ("/api/me/lists", {"name": "L"}),
        ("/api/me/tasks/batch", {"operations": [{"op": "create", "data": {"title": "b"}}]}),
        (f"/api/me/tasks/{task['id']}/move", {}),
        (f"/api/me/reminders/{task['id']}/dismiss", None),
    ]
    for url, body in posts:
        headers = key()
        kwargs = {"json": body} if body is not None else {}
        first = await alice.post(url, headers=headers, **kwargs)
        again = await alice.post(url, headers=headers, **kwargs)
        assert first.status_code < 300, (url, first.text)
        assert (again.status_code, again.content) == (first.status_code, first.content), url
        assert again.headers["Idempotency-Replayed"] == "true"
    assert len(await listing(alice)) == 2  # the task and the batch's one


async def test_twenty_concurrent_posts_with_one_key_create_one_task(alice: User) -> None:
    headers = key()

    async def attempt() -> httpx.Response:
        return await alice.post("/api/me/tasks", json={"title": "racing"}, headers=headers)

    responses = await asyncio.gather(*(attempt() for _ in range(20)))
    done = [r for r in responses if r.status_code == 201]
    waiting = [r for r in responses if r.status_code == 409]
    assert len(done) + len(waiting) == 20, [r.status_code for r in responses]
    assert done, "no request completed"
    assert len({r.content for r in done}) == 1
    for response in waiting:
        assert response.json()["code"] == "idempotency_in_progress"
    assert [t["title"] for t in await listing(alice)] == ["racing"]


async def test_an_expired_key_can_be_used_again_and_is_purged(
    alice: User, owner_conn: asyncpg.Connection
) -> None:
    headers, other = key(), key()
    first = await alice.post("/api/me/tasks", json={"title": "a"}, headers=headers)
    await alice.post("/api/me/tasks", json={"title": "b"}, headers=other)
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", alice.id)
        await owner_conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1s'")
    again = await alice.post("/api/me/tasks", json={"title": "a"}, headers=headers)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", alice.id)
        left = await owner_conn.fetchval("SELECT count(*) FROM idempotency_keys")
    assert left == 1  # the other expired key was purged by the claim


async def test_a_key_stored_by_one_instance_is_honoured_by_another(
    owner_url: str, alice: User
) -> None:
    headers = {**alice.headers, **key()}
    instances = [create_app(make_settings(owner_url)) for _ in range(2)]
    async with LifespanManager(instances[0]), LifespanManager(instances[1]):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            for app in instances
        ]
        first = await clients[0].post("/api/me/tasks", json={"title": "x"}, headers=headers)
        second = await clients[1].post("/api/me/tasks", json={"title": "x"}, headers=headers)
        for client in clients:
            await client.aclose()
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["Idempotency-Replayed"] == "true"
    assert len(await listing(alice)) == 1
