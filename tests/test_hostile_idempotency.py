"""Stored idempotent responses cannot grow without bound: per user, at most
IDEMPOTENCY_MAX_KEYS_PER_USER responses and IDEMPOTENCY_MAX_BYTES_PER_USER stored bytes,
the oldest forgotten first; large bodies are stored compressed."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import User, make_settings
from todo_api.config import Settings
from todo_api.main import create_app

MAX_KEYS = 3
MAX_BYTES = 65_536


@pytest.fixture(scope="module")
async def bounded(owner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        owner_url,
        idempotency_max_keys_per_user=MAX_KEYS,
        idempotency_max_bytes_per_user=MAX_BYTES,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{value}"'}


async def stored_rows(owner_conn: asyncpg.Connection, user_id: str) -> list[asyncpg.Record]:
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        rows: list[asyncpg.Record] = await owner_conn.fetch(
            "SELECT key, octet_length(response_body) AS bytes, response_compressed"
            " FROM idempotency_keys ORDER BY created_at"
        )
    return rows


def fresh(http: httpx.AsyncClient) -> User:
    return User(http, f"user-{uuid.uuid4().hex[:12]}")


async def test_beyond_the_count_bound_the_oldest_key_is_forgotten(
    bounded: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    user = fresh(bounded)
    for n in range(MAX_KEYS + 1):
        created = await user.post("/api/me/tasks", json={"title": f"t{n}"}, headers=key(f"k{n}"))
        assert created.status_code == 201, created.text
    assert [r["key"] for r in await stored_rows(owner_conn, user.id)] == ["k1", "k2", "k3"]
    newest = await user.post("/api/me/tasks", json={"title": "t3"}, headers=key("k3"))
    assert newest.headers["Idempotency-Replayed"] == "true"
    # The forgotten one runs again, as after expiry.
    oldest = await user.post("/api/me/tasks", json={"title": "t0"}, headers=key("k0"))
    assert oldest.status_code == 201
    assert "Idempotency-Replayed" not in oldest.headers


async def test_the_bound_is_per_user(
    bounded: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    one, other = fresh(bounded), fresh(bounded)
    await one.post("/api/me/tasks", json={"title": "kept"}, headers=key("mine"))
    for n in range(MAX_KEYS + 2):
        await other.post("/api/me/tasks", json={"title": f"t{n}"}, headers=key(f"k{n}"))
    assert [r["key"] for r in await stored_rows(owner_conn, one.id)] == ["mine"]
    assert len(await stored_rows(owner_conn, other.id)) == MAX_KEYS


def _noisy_batch(count: int) -> dict[str, Any]:
    # Random text compresses poorly: these responses stay large when stored.
    return {
        "operations": [
            {"op": "create", "data": {"title": "t", "description": secrets.token_urlsafe(1500)}}
            for _ in range(count)
        ]
    }


async def test_beyond_the_byte_bound_the_oldest_responses_are_forgotten(
    bounded: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    user = fresh(bounded)
    for n in range(3):
        answer = await user.post("/api/me/tasks/batch", json=_noisy_batch(20), headers=key(f"b{n}"))
        assert answer.status_code == 200, answer.text
        assert len(answer.content) > MAX_BYTES / 3
    rows = await stored_rows(owner_conn, user.id)
    assert sum(r["bytes"] for r in rows) <= MAX_BYTES
    assert rows[-1]["key"] == "b2"
    assert "b0" not in [r["key"] for r in rows]


async def test_a_response_larger_than_the_bound_is_kept_alone(
    bounded: httpx.AsyncClient, owner_conn: asyncpg.Connection
) -> None:
    user = fresh(bounded)
    await user.post("/api/me/tasks", json={"title": "small"}, headers=key("small"))
    body = _noisy_batch(60)
    first = await user.post("/api/me/tasks/batch", json=body, headers=key("huge"))
    assert first.status_code == 200 and len(first.content) > MAX_BYTES
    assert [r["key"] for r in await stored_rows(owner_conn, user.id)] == ["huge"]
    again = await user.post("/api/me/tasks/batch", json=body, headers=key("huge"))
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.content == first.content


async def test_a_large_batch_response_is_stored_compressed_and_replayed_whole(
    alice: User, owner_conn: asyncpg.Connection
) -> None:
    body = {
        "operations": [
            {"op": "create", "data": {"title": f"Task {n}", "tags": ["home", "work"]}}
            for n in range(100)
        ]
    }
    first = await alice.post("/api/me/tasks/batch", json=body, headers=key("batch"))
    assert first.status_code == 200, first.text
    ((stored,),) = [(r,) for r in await stored_rows(owner_conn, alice.id) if r["key"] == "batch"]
    assert stored["response_compressed"]
    assert stored["bytes"] * 5 < len(first.content)
    again = await alice.post("/api/me/tasks/batch", json=body, headers=key("batch"))
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.content == first.content


def test_the_default_bounds_are_a_thousand_responses_and_four_mib() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.idempotency_max_keys_per_user == 1000
    assert settings.idempotency_max_bytes_per_user == 4 * 1024 * 1024
