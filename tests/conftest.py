"""Test harness: a real PostgreSQL server, real signed tokens, real HTTP through the app.

`TEST_DATABASE_URL` names a database the suite may wipe, reached as a role that is not a
superuser (CI creates one). Without it the suite starts an embedded PostgreSQL and makes
such a role itself. Nothing here overrides authentication.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.live_server import serve
from todo_api.config import Settings
from todo_api.db import embedded
from todo_api.db.urls import plan_connection
from todo_api.main import create_app
from todo_api.migrations import run_migrations

TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
OWNER_ROLE = "todo_test_owner"
TEST_DB = "todo_test"


def _asyncpg_dsn(url: str) -> tuple[str, dict[str, Any]]:
    """A DSN and keyword arguments asyncpg accepts for a libpq-style URL."""
    plan = plan_connection(url)
    dsn = plan.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return dsn, {"ssl": plan.connect_args.get("ssl")}


async def _provision_embedded(admin_url: str) -> str:
    """As the embedded superuser, create a non-superuser owner role and its database."""
    dsn, kwargs = _asyncpg_dsn(admin_url)
    conn = await asyncpg.connect(dsn, **kwargs)
    try:
        await conn.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS")
        await conn.execute(f"CREATE DATABASE {TEST_DB} OWNER {OWNER_ROLE}")
    finally:
        await conn.close()
    host = admin_url.split("host=", 1)[1]
    return f"postgresql://{OWNER_ROLE}@/{TEST_DB}?host={host}"


async def _reset_schema(url: str) -> None:
    dsn, kwargs = _asyncpg_dsn(url)
    conn = await asyncpg.connect(dsn, **kwargs)
    try:
        is_super = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert not is_super, "TEST_DATABASE_URL must not connect as a superuser"
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def owner_url() -> Iterator[str]:
    """URL of the test database, as its (non-superuser) owner, freshly migrated."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        asyncio.run(_reset_schema(configured))
        asyncio.run(run_migrations(configured))
        yield configured
        return
    with tempfile.TemporaryDirectory(prefix="todo-api-test-") as tmp:
        # Other local services (PgBouncer, running as `postgres`) must reach the socket.
        Path(tmp).chmod(0o755)
        admin_url, server = embedded.start(Path(tmp), cleanup="delete")
        url = asyncio.run(_provision_embedded(admin_url))
        asyncio.run(_reset_schema(url))
        asyncio.run(run_migrations(url))
        yield url
        server.cleanup()


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "jwt_secret": TEST_SECRET,
        "database_pool_size": 5,
        "cors_origins": ["https://app.example.com"],
        # The suite sends thousands of requests from one address and a few users; the
        # limiter stays on (every response goes through it) with budgets it never
        # exhausts. Tests of the limits themselves set small ones.
        "rate_limit_per_minute": 1_000_000,
        "rate_limit_anon_per_minute": 1_000_000,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def app(owner_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(make_settings(owner_url))
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
def mcp_base(owner_url: str) -> Iterator[str]:
    """A running server (uvicorn in a thread) on the suite's database, for clients that
    need real HTTP, such as the MCP client (its endpoint is `{mcp_base}/mcp`)."""
    with serve(create_app(make_settings(owner_url))) as base_url:
        yield base_url


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def make_token(sub: str, *, secret: str = TEST_SECRET, ttl: int = 600, **claims: Any) -> str:
    """A real HS256 token, signed the way a frontend's auth server would."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


class User:
    """A test user with its own token; `user.get(...)` etc. send it."""

    def __init__(self, http: httpx.AsyncClient, sub: str, **claims: Any) -> None:
        self.http = http
        self.id = sub
        self.token = make_token(sub, **claims)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def create_task(self, title: str = "A task", **fields: Any) -> dict[str, Any]:
        response = await self.post("/api/me/tasks", json={"title": title, **fields})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def new_user(client: httpx.AsyncClient) -> Callable[..., User]:
    """Make users with fresh ids, so tests never see each other's data."""

    def factory(**claims: Any) -> User:
        return User(client, f"user-{uuid.uuid4().hex[:12]}", **claims)

    return factory


@pytest.fixture
def alice(new_user: Callable[..., User]) -> User:
    return new_user(email="alice@example.com", name="Alice")


@pytest.fixture
def bob(new_user: Callable[..., User]) -> User:
    return new_user(email="bob@example.com", name="Bob")


@pytest.fixture
async def owner_conn(owner_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the table owner, for arranging faults and inspecting the catalog."""
    dsn, kwargs = _asyncpg_dsn(owner_url)
    conn = await asyncpg.connect(dsn, **kwargs)
    try:
        yield conn
    finally:
        await conn.close()


async def count_tasks(owner_conn: asyncpg.Connection, user_id: str) -> int:
    """How many tasks `user_id` has, read as the owner inside that user's context."""
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        count: int = await owner_conn.fetchval("SELECT count(*) FROM tasks")
    return count
