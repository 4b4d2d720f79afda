"""Interoperability with a real Better Auth server (Node), configured by its URL alone."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.better_auth_server import (
    BetterAuthServer,
    ensure_installed,
    get_jwt,
    node_available,
    sign_up,
)
from tests.conftest import make_settings
from todo_api.main import create_app


@pytest.fixture(scope="module")
def better_auth() -> Iterator[BetterAuthServer]:
    if not node_available():
        if os.environ.get("CI"):
            pytest.fail("Node.js and npm are required for the Better Auth test in CI")
        pytest.skip("Node.js is not installed")
    ensure_installed()
    with BetterAuthServer() as server:
        yield server


@pytest.fixture(scope="module")
async def api(owner_url: str, better_auth: BetterAuthServer) -> AsyncIterator[httpx.AsyncClient]:
    # Only BETTER_AUTH_URL: JWKS location, issuer and audience all follow from it.
    settings = make_settings(owner_url, jwt_secret=None, better_auth_url=better_auth.url + "/")
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_better_auth_jwt_works_end_to_end(
    api: httpx.AsyncClient, better_auth: BetterAuthServer
) -> None:
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    user = await sign_up(better_auth.url, email, "correct horse battery", "Ada Lovelace")
    token = await get_jwt(better_auth.url, user.bearer_token)
    headers = {"Authorization": f"Bearer {token}"}

    created = await api.post("/api/me/tasks", json={"title": "Write notes"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == user.user_id
    listed = await api.get(f"/api/{user.user_id}/tasks", headers=headers)
    assert [task["title"] for task in listed.json()] == ["Write notes"]

    profile = (await api.get("/api/me", headers=headers)).json()
    assert profile["email"] == email
    assert profile["name"] == "Ada Lovelace"

    other = await api.get("/api/someone-else/tasks", headers=headers)
    assert other.status_code == 403


async def test_session_token_is_refused_with_a_pointer_to_the_jwt_plugin(
    api: httpx.AsyncClient, better_auth: BetterAuthServer
) -> None:
    user = await sign_up(
        better_auth.url, f"s-{uuid.uuid4().hex[:8]}@example.com", "pw-123456789", "S"
    )
    for opaque in (user.session_token, user.bearer_token):
        response = await api.get("/api/me/tasks", headers={"Authorization": f"Bearer {opaque}"})
        assert response.status_code == 401
        assert response.json()["code"] == "token_opaque"
        assert "/api/auth/token" in response.json()["detail"]


async def test_shared_secret_alone_does_not_verify_better_auth_tokens(
    owner_url: str, better_auth: BetterAuthServer
) -> None:
    # BETTER_AUTH_SECRET signs Better Auth's cookies; it is not a key for EdDSA JWTs.
    user = await sign_up(
        better_auth.url, f"k-{uuid.uuid4().hex[:8]}@example.com", "pw-123456789", "K"
    )
    token = await get_jwt(better_auth.url, user.bearer_token)
    settings = make_settings(owner_url, jwt_secret=None, better_auth_secret="x" * 48)
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_algorithm_refused"
