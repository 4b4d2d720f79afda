"""What a client's `Host` header can and cannot do, `/metrics` exposure, and `HEAD` on
the health probes — through HTTP, in-process and over a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.conftest import User, make_settings, make_token
from tests.live_server import serve
from todo_api.http.hosts import host_allowed, host_name
from todo_api.main import create_app

EVIL = "evil.example"
METRICS_TOKEN = "metrics-token-0123456789abcdef"


@asynccontextmanager
async def running(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[Any]:
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


def _mentions(response: httpx.Response, text: str) -> bool:
    return text in response.text or any(text in v for v in response.headers.values())


# --- URLs the API builds never come from Host --------------------------------------------


async def test_no_response_reflects_a_forged_host(client: httpx.AsyncClient) -> None:
    user = User(client, "host-reflection-user")
    forged = {"Host": EVIL, "X-Forwarded-Host": EVIL}
    answers = [
        await user.post("/api/me/tasks", json={"title": "a"}, headers=forged),
        await user.post("/api/tasks", json={"title": "b"}, headers=forged),
        await user.post("/api/me/lists", json={"name": "L"}, headers=forged),
        await user.get("/api/me/tasks?limit=1", headers=forged),
        await user.get("/api/tasks/?limit=1&unknown=1", headers=forged),
        await user.get("/api/me/tasks/", headers=forged),
        await user.get("/api/me/nowhere", headers=forged),
        await user.delete("/api/me/tags", headers=forged),
        await client.get("/docs", headers=forged),
        await client.get("/docs/", headers=forged),
        await client.get("/healthz/", headers=forged),
    ]
    assert answers[0].headers["location"].startswith("/api/me/tasks/")
    assert answers[3].headers["link"].startswith("</api/me/tasks?")
    assert not [r.request.url for r in answers if _mentions(r, EVIL)]
    assert not [r.request.url for r in answers if 300 <= r.status_code < 400]


def test_a_forged_host_is_not_reflected_over_real_http(owner_url: str) -> None:
    with serve(create_app(make_settings(owner_url))) as base_url:
        headers = {"Host": EVIL, "Authorization": f"Bearer {make_token('host-live-user')}"}
        created = httpx.post(f"{base_url}/api/tasks", headers=headers, json={"title": "t"})
        httpx.post(f"{base_url}/api/tasks", headers=headers, json={"title": "u"})
        page = httpx.get(f"{base_url}/api/tasks?limit=1", headers=headers)
    assert created.status_code == 201
    assert created.headers["location"].startswith("/api/tasks/")
    assert page.headers["link"].startswith("</api/tasks?")
    assert not _mentions(created, EVIL) and not _mentions(page, EVIL)


# --- ALLOWED_HOSTS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def guarded(owner_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(owner_url, allowed_hosts="api.example.com,*.example.org"))
    async with LifespanManager(app):
        yield app


async def _get(app: FastAPI, path: str, headers: list[tuple[str, str]]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.com") as http:
        request = http.build_request("GET", path)
        request.headers = httpx.Headers(
            [(k, v) for k, v in request.headers.multi_items() if k != "host"] + headers
        )
        return await http.send(request)


@pytest.mark.parametrize(
    "host",
    [EVIL, "example.org", "api.example.com.evil.example", "evilexample.org", "127.0.0.1"],
)
async def test_a_host_outside_the_allow_list_is_400(guarded: FastAPI, host: str) -> None:
    auth = ("Authorization", f"Bearer {make_token('host-user')}")
    response = await _get(guarded, "/api/me/tasks", [("Host", host), auth])
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "host_not_allowed"
    assert body["request_id"] == response.headers["x-request-id"]
    assert host not in response.text


@pytest.mark.parametrize(
    "host", ["api.example.com", "API.Example.COM", "api.example.com:8443", "a.example.org"]
)
async def test_a_host_in_the_allow_list_is_served(guarded: FastAPI, host: str) -> None:
    auth = ("Authorization", f"Bearer {make_token('host-user')}")
    response = await _get(guarded, "/api/me/tasks", [("Host", host), auth])
    assert response.status_code == 200, response.text


async def test_two_host_headers_are_400(guarded: FastAPI) -> None:
    headers = [("Host", "api.example.com"), ("Host", EVIL)]
    response = await _get(guarded, "/api/me/tasks", headers)
    assert response.status_code == 400
    assert response.json()["code"] == "host_not_allowed"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_are_answered_whatever_the_host(guarded: FastAPI, path: str) -> None:
    response = await _get(guarded, path, [("Host", "10.0.0.7:8000")])
    assert response.status_code == 200


def test_a_request_without_host_is_400_when_hosts_are_listed(owner_url: str) -> None:
    settings = make_settings(owner_url, allowed_hosts="api.example.com")

    async def raw(base_url: str) -> bytes:
        parts = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(b"GET /api/me/tasks HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return answer

    with serve(create_app(settings)) as base_url:
        answer = asyncio.run(raw(base_url))
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"400"
    assert b'"code":"host_not_allowed"' in answer


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b"api.example.com", "api.example.com"),
        (b"API.example.com:8000", "api.example.com"),
        (b"[::1]:8000", "[::1]"),
        (b"[::1]", "[::1]"),
        (b"::1", "::1"),
    ],
)
def test_host_name(value: bytes, name: str) -> None:
    assert host_name(value) == name


def test_a_wildcard_entry_matches_subdomains_only() -> None:
    assert host_allowed("a.example.com", ["*.example.com"])
    assert host_allowed("a.b.example.com", ["*.example.com"])
    assert not host_allowed("example.com", ["*.example.com"])
    assert not host_allowed("badexample.com", ["*.example.com"])


# --- /metrics -----------------------------------------------------------------------------


def _production(owner_url: str, **overrides: Any) -> FastAPI:
    settings = make_settings(
        owner_url, todo_api_env="production", allowed_hosts="testserver", **overrides
    )
    return create_app(settings)


async def test_metrics_are_off_by_default_in_production(owner_url: str) -> None:
    async with running(_production(owner_url)) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Basic {METRICS_TOKEN}", 401),
        (f"Bearer {make_token('metrics-user')}", 401),
        (f"Bearer {METRICS_TOKEN}", 200),
    ],
    ids=["none", "wrong", "other-scheme", "a-user-token", "the-metrics-token"],
)
async def test_metrics_token_guards_metrics(
    owner_url: str, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with running(_production(owner_url, metrics_token=METRICS_TOKEN)) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["code"] == "metrics_token_invalid"
        assert METRICS_TOKEN not in response.text
    else:
        assert "todo_api_requests_total" in response.text


# --- HEAD on the probes -------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(owner_url: str) -> Iterator[str]:
    with serve(create_app(make_settings(owner_url))) as base_url:
        yield base_url


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_is_answered_on_the_probes(live: str, path: str) -> None:
    response = httpx.head(f"{live}{path}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "application/json"


def test_head_probes_stay_out_of_the_schema(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    assert set(paths["/healthz"]) == {"get"}
    assert set(paths["/readyz"]) == {"get"}
