"""Authentication as a client meets it: every refusal is a 401 problem with a reason."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from tests.conftest import TEST_SECRET, User, make_token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_401(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 401
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_missing_token_is_401_with_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks")
    _assert_401(response, "token_missing")
    assert "error=" not in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (make_token("u1", ttl=-120), "token_expired"),
        (
            make_token("u1", secret="another-secret-that-is-also-long-enough-000"),
            "token_signature_invalid",
        ),
        (
            jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, None, algorithm="none"),
            "token_algorithm_refused",
        ),
        ("opaqueSessionToken1234567890abcdef", "token_opaque"),
        ("a.b.c", "token_malformed"),
        (make_token("me"), "token_subject_invalid"),
        (make_token("tasks"), "token_subject_invalid"),
    ],
    ids=["expired", "wrong-key", "alg-none", "opaque", "garbage", "sub-me", "sub-tasks"],
)
async def test_bad_token_is_401(client: httpx.AsyncClient, token: str, code: str) -> None:
    response = await client.get("/api/me/tasks", headers=_bearer(token))
    _assert_401(response, code)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_token_without_exp_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode({"sub": "u1"}, TEST_SECRET, algorithm="HS256")
    response = await client.get("/api/me/tasks", headers=_bearer(token))
    assert response.status_code == 401
    assert response.json()["code"].startswith("token_")


async def test_opaque_token_description_points_to_jwt_plugin(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks", headers=_bearer("sessionTokenWithoutDots123"))
    assert "JWT" in response.json()["detail"]


async def test_unauthenticated_request_with_malformed_body_is_401(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/me/tasks", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _assert_401(response, "token_missing")


async def test_unauthenticated_request_for_someone_elses_path_is_401(
    client: httpx.AsyncClient, alice: User
) -> None:
    response = await client.delete(f"/api/{alice.id}/tasks/1")
    _assert_401(response, "token_missing")


async def test_401_beats_404_on_unknown_api_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/no-such-thing")
    _assert_401(response, "token_missing")


async def test_valid_token_reaches_the_handler(alice: User) -> None:
    response = await alice.get("/api/me")
    assert response.status_code == 200
    assert response.json()["user_id"] == alice.id


async def test_lowercase_bearer_scheme_is_accepted(client: httpx.AsyncClient, alice: User) -> None:
    response = await client.get("/api/me", headers={"Authorization": f"bearer {alice.token}"})
    assert response.status_code == 200


async def test_health_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200
