"""Liveness and readiness."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager

from tests.conftest import make_settings, make_token
from todo_api.main import create_app

# Nothing listens on port 1: connecting fails at once.
UNREACHABLE_URL = "postgresql://nobody@127.0.0.1:1/nothing"


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_isolation(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "isolation": "enforced",
        "jwks": "not_configured",
    }


async def test_database_down_gives_503_problems_not_500() -> None:
    app = create_app(make_settings(UNREACHABLE_URL, database_connect_timeout=2))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
            token = make_token("someone")
            listed = await http.get("/api/me/tasks", headers={"Authorization": f"Bearer {token}"})
            alive = await http.get("/healthz")
    assert ready.status_code == 503
    assert ready.json()["code"] == "database_unavailable"
    assert "retry-after" in ready.headers
    assert listed.status_code == 503
    assert listed.headers["content-type"] == "application/problem+json"
    assert listed.json()["code"] == "database_unavailable"
    assert "nobody" not in listed.text
    assert alive.status_code == 200


async def test_readyz_is_503_while_no_jwks_key_could_be_loaded(owner_url: str) -> None:
    # Nothing listens on port 1, so the key set can never be fetched.
    settings = make_settings(owner_url, jwt_secret=None, jwt_jwks_url="http://127.0.0.1:1/jwks")
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["code"] == "jwks_unavailable"
