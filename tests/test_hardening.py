"""HTTP hardening: CORS, security headers, docs in production, request limits, and the
hostile inputs that must never become a 500 (NUL bytes, int64 overflow, 10 MB strings,
deep JSON, invalid UTF-8, oversized chunked bodies, huge headers)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import ValidationError

from tests.conftest import TEST_SECRET, User, make_settings, make_token
from tests.live_server import serve
from tests.routes.support import assert_problem
from todo_api.config import Settings
from todo_api.http.request_limits import (
    MAX_JSON_DEPTH,
    MAX_QUERY_BYTES,
    MAX_QUERY_PARAMS,
    json_depth_exceeds,
)
from todo_api.main import EXPOSED_HEADERS, create_app

ORIGIN = "https://app.example.com"
EVIL = "https://evil.example.net"
MiB = 1024 * 1024
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'"
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> Any:
    """A JSON value whose arrays and objects nest exactly `depth` levels."""
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@asynccontextmanager
async def running(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[Any]:
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http


# --- CORS --------------------------------------------------------------------------------


def preflight(method: str = "POST", headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_preflight_from_the_frontend_is_allowed(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.options("/api/me/tasks/1", headers=preflight(method))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert method in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({**preflight(), "Origin": EVIL}, "origin"),
        (preflight("TRACE"), "method"),
        (preflight(headers="authorization, x-evil"), "headers"),
    ],
)
async def test_preflight_refusal_is_a_problem_without_allow_origin(
    client: httpx.AsyncClient, headers: dict[str, str], refused: str
) -> None:
    response = await client.options("/api/me/tasks", headers=headers)
    body = assert_problem(response, 400, "cors_refused")
    assert refused in body["detail"]
    if refused == "origin":
        assert "access-control-allow-origin" not in response.headers


async def test_simple_request_from_another_origin_gets_no_allow_origin(alice: User) -> None:
    response = await alice.get("/api/me/tasks", headers={"Origin": EVIL})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_allowed_origin_is_echoed_never_a_wildcard(alice: User) -> None:
    response = await alice.get("/api/me/tasks", headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    # Credentials may be included (`fetch(..., {credentials: "include"})`): the API
    # reads only the Authorization header, never a cookie.
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]


def test_wildcard_origin_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="explicitly"):
        Settings(_env_file=None, jwt_secret=TEST_SECRET, cors_origins="*")  # type: ignore[call-arg]


async def test_design_headers_are_exposed(alice: User) -> None:
    response = await alice.get("/api/me/tasks", headers={"Origin": ORIGIN})
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    design = {"Link", "Location", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    design |= {"Retry-After", "X-Request-ID", "ETag", "Idempotency-Replayed"}
    design |= {"Ignored-Query-Params", "Preference-Applied"}
    assert exposed == design == set(EXPOSED_HEADERS)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/me/tasks/9223372036854775807", None, 404),
        ("GET", "/api/me/no-such-thing", None, 404),
        ("POST", "/api/me/tasks", {"title": ""}, 422),
        ("GET", "/api/someone-else/tasks", None, 403),
        ("POST", "/api/me/tasks", {"title": "x" * (2 * MiB)}, 413),
    ],
)
async def test_errors_carry_cors_headers(
    alice: User, method: str, path: str, body: Any, status: int
) -> None:
    response = await alice.request(method, path, json=body, headers={"Origin": ORIGIN})
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_401_carries_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks", headers={"Origin": ORIGIN})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ORIGIN


async def test_500_carries_cors_headers_and_a_generic_problem(owner_url: str) -> None:
    app = create_app(make_settings(owner_url))

    async def explode() -> None:
        raise RuntimeError("internal detail that must not reach the client")

    app.add_api_route("/boom", explode)
    async with running(app) as http:
        response = await http.get("/boom", headers={"Origin": ORIGIN})
    body = assert_problem(response, 500, "internal_error")
    assert "internal detail" not in response.text
    assert body["request_id"]
    assert response.headers["access-control-allow-origin"] == ORIGIN


LOCAL_FRONTENDS = [
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://[::1]:3000",
    "http://localhost",
]


@pytest.mark.parametrize("origin", LOCAL_FRONTENDS)
async def test_development_without_origins_allows_local_frontends(
    owner_url: str, origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="todo_api")
    async with running(create_app(make_settings(owner_url, cors_origins=[]))) as http:
        allowed = await http.options("/api/me/tasks", headers={**preflight(), "Origin": origin})
        simple = await http.get("/healthz", headers={"Origin": origin})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["access-control-allow-origin"] == origin
    assert any("local development origins" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "origin",
    [
        EVIL,
        "https://localhost:3000",  # the local default is plain HTTP only
        "http://localhost.evil.example",
        "http://localhost:3000.evil.example",
        "http://127.0.0.2:3000",
        "null",
    ],
)
async def test_the_local_default_allows_nothing_else(owner_url: str, origin: str) -> None:
    async with running(create_app(make_settings(owner_url, cors_origins=[]))) as http:
        refused = await http.options("/api/me/tasks", headers={**preflight(), "Origin": origin})
    assert_problem(refused, 400, "cors_refused")
    assert "access-control-allow-origin" not in refused.headers


async def test_production_without_origins_allows_no_cross_origin_access(
    owner_url: str,
) -> None:
    settings = production(owner_url, cors_origins=[])
    async with running(create_app(settings)) as http:
        simple = await http.get("/healthz", headers={"Origin": "http://localhost:3000"})
        refused = await http.options(
            "/api/me/tasks", headers={**preflight(), "Origin": "http://localhost:3000"}
        )
    assert "access-control-allow-origin" not in simple.headers
    assert_problem(refused, 400, "cors_refused")


async def test_configured_origins_replace_the_local_default(owner_url: str) -> None:
    async with running(create_app(make_settings(owner_url))) as http:
        refused = await http.options(
            "/api/me/tasks", headers={**preflight(), "Origin": "http://localhost:3000"}
        )
    assert_problem(refused, 400, "cors_refused")


# --- security headers ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/me/tasks", "/api/me/tasks/0", "/healthz", "/nope"])
async def test_security_headers_on_every_response(alice: User, path: str) -> None:
    response = await alice.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == STRICT_CSP
    assert "strict-transport-security" not in response.headers  # development, plain HTTP


async def test_api_responses_are_not_cached(alice: User) -> None:
    response = await alice.get("/api/me/tasks")
    assert response.headers["cache-control"] == "no-store"


async def test_docs_page_has_no_strict_csp_but_still_nosniff(client: httpx.AsyncClient) -> None:
    # Swagger UI loads its script and styles from a CDN: the strict policy would blank it.
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def production(owner_url: str, **overrides: Any) -> Settings:
    return make_settings(
        owner_url, todo_api_env="production", **{"allowed_hosts": ["testserver"], **overrides}
    )


@pytest.mark.parametrize(
    ("env", "scheme", "hsts"),
    [("production", "https", True), ("production", "http", False), ("development", "https", False)],
)
async def test_hsts_only_in_production_over_tls(
    owner_url: str, env: str, scheme: str, hsts: bool
) -> None:
    app = create_app(make_settings(owner_url, todo_api_env=env, allowed_hosts=["api.example.com"]))
    async with running(app, base_url=f"{scheme}://api.example.com") as http:
        response = await http.get("/healthz")
    assert ("strict-transport-security" in response.headers) is hsts
    if hsts:
        assert response.headers["strict-transport-security"].startswith("max-age=31536000")


@pytest.mark.parametrize(
    ("env", "docs_enabled", "visible"),
    [
        ("production", None, False),
        ("production", True, True),
        ("development", None, True),
        ("development", False, False),
    ],
)
async def test_docs_and_schema_visibility(
    owner_url: str, env: str, docs_enabled: bool | None, visible: bool
) -> None:
    settings = make_settings(
        owner_url, todo_api_env=env, docs_enabled=docs_enabled, allowed_hosts=["testserver"]
    )
    app = create_app(settings)
    async with running(app) as http:
        docs = await http.get("/docs")
        schema = await http.get("/openapi.json")
    assert docs.status_code == schema.status_code == (200 if visible else 404)
    if not visible:
        assert_problem(schema, 404, "not_found")


# --- body size (413), chunked bodies included ---------------------------------------------


async def test_content_length_over_the_limit_is_413_before_reading(alice: User) -> None:
    body = json.dumps({"title": "x" * (MiB + 1)}).encode()
    response = await alice.post("/api/me/tasks", content=body, headers=JSON)
    assert_problem(response, 413, "body_too_large")


async def test_ten_megabyte_string_is_413(alice: User) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "description": "x" * 10 * MiB})
    assert_problem(response, 413, "body_too_large")


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, without a Content-Length."""
    yield b'{"title": "t", "description": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_chunked_body_over_the_limit_is_413(alice: User) -> None:
    response = await alice.post("/api/me/tasks", content=chunks(10 * MiB), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "body_too_large")


async def test_chunked_body_under_the_limit_is_read(alice: User) -> None:
    async def body() -> AsyncIterator[bytes]:
        for part in (b'{"title": ', b'"chunked', b' title"}'):
            yield part

    response = await alice.post("/api/me/tasks", content=body(), headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "chunked title"


@pytest.mark.parametrize("value", ["abc", "-1", "1e3"])
async def test_malformed_content_length_is_400(alice: User, value: str) -> None:
    headers = {**alice.headers, **JSON, "Content-Length": value}
    response = await alice.http.post("/api/me/tasks", content=b'{"title": "t"}', headers=headers)
    assert_problem(response, 400, "bad_content_length")


async def test_unauthenticated_oversized_body_is_refused_without_reading_it(
    client: httpx.AsyncClient,
) -> None:
    # A chunked body from an anonymous client is never read: 401 comes first.
    response = await client.post("/api/me/tasks", content=chunks(10 * MiB), headers=JSON)
    assert_problem(response, 401, "token_missing")


# --- JSON depth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b"{}", False),
        (json.dumps(nested(MAX_JSON_DEPTH)).encode(), False),
        (json.dumps(nested(MAX_JSON_DEPTH + 1)).encode(), True),
        (b"[" * 100_000 + b"]" * 100_000, True),
        (json.dumps({"title": "[" * 1000 + "{" * 1000}).encode(), False),  # text, not nesting
        (json.dumps({"t": '\\"[[[[' * 100}).encode(), False),  # escaped quotes in a string
        (b"[" * 1000, False),  # unbalanced: for the parser to refuse, not "deep"
        (b"[" * 40 + b"}" * 40, True),  # mismatched kinds still nest
    ],
)
def test_json_depth(body: bytes, deep: bool) -> None:
    assert json_depth_exceeds(body) is deep


async def test_json_deeper_than_the_limit_is_422(alice: User) -> None:
    body = {"title": "t", "description": nested(MAX_JSON_DEPTH)}
    response = await alice.post("/api/me/tasks", json=body)
    assert_problem(response, 422, "json_too_deep")


async def test_json_at_the_limit_reaches_validation(alice: User) -> None:
    body = {"title": "t", "description": nested(MAX_JSON_DEPTH - 1)}
    response = await alice.post("/api/me/tasks", json=body)
    assert_problem(response, 422, "validation_failed")


async def test_brackets_inside_strings_are_text(alice: User) -> None:
    title = "[" * 60 + "{" * 60
    response = await alice.post("/api/me/tasks", json={"title": title})
    assert response.status_code == 201, response.text
    assert response.json()["title"] == title


@pytest.mark.parametrize("content_type", ["application/json", "application/merge-patch+json", None])
async def test_depth_is_checked_for_every_json_content_type(
    alice: User, content_type: str | None
) -> None:
    raw = json.dumps({"title": nested(100)}).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = await alice.request("PATCH", "/api/me", content=raw, headers=headers)
    assert_problem(response, 422, "json_too_deep")


async def test_deep_json_from_an_anonymous_client_is_401(client: httpx.AsyncClient) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    response = await client.post("/api/me/tasks", content=raw, headers=JSON)
    assert_problem(response, 401, "token_missing")


async def test_deep_json_to_someone_elses_path_is_403(alice: User) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    response = await alice.post("/api/somebody/tasks", content=raw, headers=JSON)
    assert_problem(response, 403, "user_mismatch")


# --- query strings -------------------------------------------------------------------------


async def test_query_parameters_up_to_the_limit_are_accepted(alice: User) -> None:
    params = [("limit", "5")] + [(f"x{n}", "1") for n in range(MAX_QUERY_PARAMS - 1)]
    response = await alice.get("/api/me/tasks", params=params)
    assert response.status_code == 200


async def test_too_many_query_parameters_is_422(alice: User) -> None:
    params = [(f"x{n}", "1") for n in range(MAX_QUERY_PARAMS + 1)]
    response = await alice.get("/api/me/tasks", params=params)
    assert_problem(response, 422, "too_many_query_parameters")


async def test_overlong_query_string_is_414(alice: User) -> None:
    response = await alice.get("/api/me/tasks", params={"cursor": "A" * MAX_QUERY_BYTES})
    assert_problem(response, 414, "query_too_long")


async def test_query_limits_come_after_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks", params={"cursor": "A" * MAX_QUERY_BYTES})
    assert_problem(response, 401, "token_missing")


async def test_page_size_is_capped(alice: User) -> None:
    response = await alice.get("/api/me/tasks", params={"limit": 201})
    assert_problem(response, 422, "validation_failed")


# --- hostile inputs: always a 4xx problem, never a 500 ------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/me/tasks/1%00", 422),
        ("/api/me/tasks?cursor=%00", 422),
        ("/api/me/tasks?status=%00", 422),
        ("/api/%00/tasks", 403),
        ("/api/me/tasks/%FF", 422),
        ("/api/me/tasks?cursor=%FF%FE", 422),
        ("/api/%FF%FE/tasks", 403),
        ("/api/me/tasks/99999999999999999999999999999999999999", 422),
        ("/api/me/tasks/-9223372036854775809", 422),
        ("/api/me/tasks?limit=99999999999999999999999999", 422),
    ],
)
async def test_hostile_path_and_query(alice: User, path: str, status: int) -> None:
    response = await alice.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": "t", "completed": 99999999999999999999999}',
        b'{"title": 9223372036854775808}',
        b'{"title": ' + b"9" * 5000 + b"}",  # beyond Python's int-parsing digit limit
        b'{"title": 1e400}',
        b'{"title": NaN}',
        b'{"title": "t", "description": -Infinity}',
        b'{"title": "nul \\u0000 inside"}',
        b'{"title": "t\x00"}',
        b'{"title": "\xff\xfe invalid utf-8"}',
        b"\xff\xfe\x00\x00",
        b'{"title": "t"',
        b"",
        b"null",
        b'"just a string"',
        b'{"title": "t", "title": "duplicate"}',
        b"\xef\xbb\xbf" + b'{"title": "bom"}',
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_hostile_json_bodies(alice: User, raw: bytes, method: str) -> None:
    task = await alice.create_task()
    path = "/api/me/tasks" if method == "POST" else f"/api/me/tasks/{task['id']}"
    response = await alice.request(method, path, content=raw, headers=JSON)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    else:
        assert "\x00" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer " + "a" * 100_000},
        {"Authorization": "Bearer " + "a.b.c" * 20_000},
        {"X-Request-ID": "x" * 100_000},
        {"Cookie": "c=" + "v" * 100_000},
        {"Origin": ORIGIN + "x" * 100_000},
        {"Content-Type": "application/json; charset=" + "x" * 100_000},
        {f"X-Filler-{n}": "v" * 100 for n in range(500)},
    ],
)
async def test_huge_headers_are_refused_or_ignored(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    token = make_token("huge-header-user")
    headers = {"Authorization": f"Bearer {token}", **headers}
    response = await client.post("/api/me/tasks", json={"title": "t"}, headers=headers)
    assert response.status_code in {201, 401, 422}, response.text
    assert len(response.headers.get("x-request-id", "")) <= 128


async def test_nul_byte_in_authorization_header_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/tasks", headers=[(b"authorization", b"Bearer abc\x00def")])
    assert_problem(response, 401, "token_malformed")


# --- the same over real HTTP: uvicorn's parser in front of the app ----------------------


@pytest.fixture(scope="module")
def live_url(owner_url: str) -> Iterator[str]:
    app = create_app(make_settings(owner_url))
    with serve(app) as url:
        yield url


async def raw_request(base_url: str, head: bytes, body_chunks: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """Send bytes as they are (no client-side checks), return the response head."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        for chunk in body_chunks:
            writer.write(chunk)
            await writer.drain()
        await writer.drain()
        return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


async def test_real_chunked_upload_over_the_limit_is_413(live_url: str) -> None:
    token = make_token("live-user").encode()
    head = (
        b"POST /api/me/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    framed = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 32
    response = await raw_request(live_url, head, [b'4\r\n["x"\r\n', *framed])
    assert status_of(response) == 413
    assert b"application/problem+json" in response


async def test_real_huge_header_is_431(live_url: str) -> None:
    token = make_token("live-user").encode()
    head = b"GET /api/me/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token
    head += b"\r\nX-Big: " + b"v" * MiB + b"\r\n\r\n"
    response = await raw_request(live_url, head)
    assert status_of(response) == 431


async def test_real_invalid_utf8_path_is_a_client_error(live_url: str) -> None:
    token = make_token("live-user").encode()
    head = b"GET /api/\xff\xfe/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token
    response = await raw_request(live_url, head + b"\r\n\r\n")
    assert 400 <= status_of(response) < 500


async def test_real_nul_in_title_is_422(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as http:
        headers = {"Authorization": f"Bearer {make_token('live-user')}", **JSON}
        response = await http.post(
            "/api/me/tasks", content=b'{"title": "a\\u0000b"}', headers=headers
        )
    assert_problem(response, 422, "validation_failed")


async def test_a_body_that_never_finishes_is_cut_by_the_request_time_limit(
    owner_url: str,
) -> None:
    # The JSON depth check reads the body before the handler does; it must do so inside
    # the request time limit, or a trickling client could hold the request forever.
    app = create_app(make_settings(owner_url, request_timeout_seconds=0.2))
    stalled = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"title": "never fini'
        await stalled.wait()  # never set: the client stops sending

    async with running(app) as http:
        headers = {"Authorization": f"Bearer {make_token('slow-client')}", **JSON}
        response = await http.post("/api/me/tasks", content=body(), headers=headers)
    assert_problem(response, 503, "request_timeout")


async def test_requests_without_origin_vary_on_origin_once(alice: User) -> None:
    """Caches must not serve a response made without `Origin` to a browser that sends one."""
    for response in (
        await alice.get("/api/me/tasks"),
        await alice.get("/api/me/tasks/999999"),
        await alice.get("/healthz"),
    ):
        assert response.headers.get_list("vary") == ["Origin"]
        assert "access-control-allow-origin" not in response.headers


def test_native_telemetry_is_off_unless_enabled(owner_url: str) -> None:
    from tests.conftest import make_settings
    from todo_api.main import create_app

    quiet = create_app(make_settings(owner_url))
    traced = create_app(make_settings(owner_url, otel_enabled=True))
    assert not quiet._native_telemetry.enabled()
    assert traced._telemetry["tracing"] and traced._telemetry["metrics"]
