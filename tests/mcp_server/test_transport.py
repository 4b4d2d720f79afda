"""The MCP endpoint as a client meets it: the handshake, the tool list, authentication
(RFC 9728), the app's middleware, and statelessness across instances."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import Tool

from tests.conftest import TEST_SECRET, User, make_settings, make_token
from tests.live_server import serve
from tests.mcp_client import connect, first_leaf
from todo_api.main import create_app
from todo_api.mcp.tools import TOOLS

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


async def test_initialize_handshake(mcp_base: str, alice: User) -> None:
    async with connect(mcp_base, alice.token, mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "todo-api"
        assert client.server_capabilities.tools is not None
        assert "task_not_found" in (client.instructions or "")


async def test_modern_protocol_needs_no_handshake(mcp_base: str, alice: User) -> None:
    async with connect(mcp_base, alice.token, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == set(TOOLS)


async def _tools(mcp_base: str, token: str) -> dict[str, Tool]:
    async with connect(mcp_base, token) as client:
        return {tool.name: tool for tool in (await client.list_tools()).tools}


async def test_tools_have_schemas_from_the_rest_models_and_hints(
    mcp_base: str, alice: User
) -> None:
    tools = await _tools(mcp_base, alice.token)
    assert set(tools) == {
        "add_task",
        "list_tasks",
        "get_task",
        "update_task",
        "complete_task",
        "delete_task",
        "list_lists",
        "list_tags",
    }
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.input_schema == TOOLS[name].arguments.model_json_schema(), name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    assert tools["add_task"].input_schema["required"] == ["title"]
    assert tools["add_task"].input_schema["additionalProperties"] is False
    assert {"q", "status", "sort", "cursor", "limit", "tag"} <= set(
        tools["list_tasks"].input_schema["properties"]
    )
    assert "task_id" in tools["update_task"].input_schema["required"]
    assert "open_subtask_ids" in tools["complete_task"].output_schema["properties"]  # type: ignore[index]
    hints = {name: tool.annotations for name, tool in tools.items()}
    for name in ("list_tasks", "get_task", "list_lists", "list_tags"):
        assert hints[name] is not None and hints[name].read_only_hint is True, name
    delete = hints["delete_task"]
    assert delete is not None and delete.destructive_hint is True
    assert delete.idempotent_hint is True and delete.read_only_hint is False
    add = hints["add_task"]
    assert add is not None and (add.read_only_hint, add.destructive_hint) == (False, False)
    assert add.idempotent_hint is False
    complete = hints["complete_task"]
    assert complete is not None and complete.idempotent_hint is False  # it can toggle


def _challenge(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.headers["www-authenticate"]


def test_without_a_token_401_names_the_resource_metadata(mcp_base: str) -> None:
    with httpx.Client(base_url=mcp_base) as http:
        response = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        challenge = _challenge(response)
        metadata_url = f"{mcp_base}/.well-known/oauth-protected-resource/mcp"
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{metadata_url}"' in challenge
        assert response.json()["code"] == "token_missing"
        for url in (metadata_url, f"{mcp_base}/.well-known/oauth-protected-resource"):
            document = http.get(url)
            assert document.status_code == 200
            assert document.json()["resource"] == f"{mcp_base}/mcp"
            assert document.json()["bearer_methods_supported"] == ["header"]
            # HS256 with no issuer configured: no authorization server to name.
            assert "authorization_servers" not in document.json()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        make_token("someone", secret="another-secret-that-is-long-enough-0123456789"),
        make_token("someone", ttl=-3600),
    ],
    ids=["opaque", "wrong-key", "expired"],
)
def test_a_bad_token_is_401_with_the_metadata_too(mcp_base: str, token: str) -> None:
    response = httpx.post(
        f"{mcp_base}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
    )
    challenge = _challenge(response)
    assert 'error="invalid_token"' in challenge
    assert "resource_metadata=" in challenge


async def test_the_mcp_client_is_refused_without_a_valid_token(mcp_base: str) -> None:
    refused: BaseException | None = None
    tools = None
    try:
        async with connect(mcp_base, "not-a-jwt") as client:
            tools = await client.list_tools()
    except BaseException as error:
        refused = first_leaf(error)
    assert tools is None
    # The client reports the 401 as a failed request (it has no OAuth flow configured).
    assert isinstance(refused, MCPError), refused


@pytest.fixture(scope="module")
def better_auth_base(owner_url: str) -> Iterator[str]:
    settings = make_settings(
        owner_url, better_auth_url="http://127.0.0.1:9/", jwt_secret=TEST_SECRET
    )
    with serve(create_app(settings)) as base_url:
        yield base_url


def test_metadata_names_better_auth_as_the_authorization_server(better_auth_base: str) -> None:
    document = httpx.get(f"{better_auth_base}/.well-known/oauth-protected-resource").json()
    assert document["authorization_servers"] == ["http://127.0.0.1:9"]
    assert document["resource"] == f"{better_auth_base}/mcp"


def test_metadata_names_the_configured_issuer(owner_url: str) -> None:
    settings = make_settings(owner_url, jwt_issuer="https://issuer.example.com")
    with serve(create_app(settings)) as base_url:
        document = httpx.get(f"{base_url}/.well-known/oauth-protected-resource/mcp").json()
    assert document["authorization_servers"] == ["https://issuer.example.com"]


# --- the app's middleware applies -------------------------------------------------------


def test_requests_carry_the_request_id_and_are_counted(mcp_base: str, alice: User) -> None:
    headers = {**MCP_HEADERS, **alice.headers, "X-Request-ID": "mcp-trace-1"}
    with httpx.Client(base_url=mcp_base) as http:
        response = http.post("/mcp", json=INITIALIZE, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == "mcp-trace-1"
        assert response.json()["result"]["serverInfo"]["name"] == "todo-api"
        metrics = http.get("/metrics").text
    assert 'route="/mcp"' in metrics
    assert 'method="POST",route="/mcp",status="200"' in metrics.replace(", ", ",")


def test_bodies_over_the_limit_are_413(mcp_base: str, alice: User) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "add_task", "arguments": {"title": "x" * 2_000_000}},
    }
    response = httpx.post(f"{mcp_base}/mcp", json=call, headers={**MCP_HEADERS, **alice.headers})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_calls_are_rate_limited_per_user(owner_url: str) -> None:
    settings = make_settings(owner_url, rate_limit_per_minute=2)
    token = make_token("rate-limited-agent")
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
    with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as http:
        statuses = [
            http.post("/mcp", json=INITIALIZE, headers=headers).status_code for _ in range(3)
        ]
        limited = http.post("/mcp", json=INITIALIZE, headers=headers)
    assert statuses[:2] == [200, 200]
    assert limited.status_code == 429
    assert limited.json()["code"] == "rate_limited"
    assert "retry-after" in limited.headers


# --- stateless: any instance answers -----------------------------------------------------


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer in front of several instances: each request goes to the next."""

    def __init__(self, base_urls: list[str]) -> None:
        self.targets = [httpx2.URL(url) for url in base_urls]
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent = [0] * len(base_urls)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = sum(self.sent) % len(self.targets)
        self.sent[index] += 1
        target = self.targets[index]
        request.url = request.url.copy_with(host=target.host, port=target.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_two_instances_answer_the_calls_of_one_client(
    owner_url: str, mcp_base: str, alice: User, mode: str
) -> None:
    balancer: Any
    with serve(create_app(make_settings(owner_url))) as second:
        balancer = RoundRobin([mcp_base, second])
        async with connect(mcp_base, alice.token, mode=mode, transport=balancer) as client:
            created = []
            for n in range(3):
                result = await client.call_tool("add_task", {"title": f"Balanced {n}"})
                assert not result.is_error, result.content
                assert result.structured_content is not None
                created.append(result.structured_content["id"])
            seen = []
            arguments: dict[str, Any] = {"limit": 1, "sort": "created", "order": "asc"}
            while True:
                page = await client.call_tool("list_tasks", arguments)
                assert not page.is_error, page.content
                assert page.structured_content is not None
                seen += [task["id"] for task in page.structured_content["tasks"]]
                cursor = page.structured_content["next_cursor"]
                if cursor is None:
                    break
                arguments = {**arguments, "cursor": cursor}
            done = await client.call_tool("complete_task", {"task_id": created[0]})
            assert not done.is_error and done.structured_content is not None
            assert done.structured_content["completed"] is True
    assert seen[-3:] == created
    assert min(balancer.sent) >= 3, balancer.sent  # both instances served calls
    assert (await alice.get(f"/api/me/tasks/{created[0]}")).json()["completed"] is True


def test_public_url_names_the_resource_whatever_the_host(owner_url: str) -> None:
    settings = make_settings(owner_url, public_url="https://tasks.example.com/")
    with serve(create_app(settings)) as base_url, httpx.Client(base_url=base_url) as http:
        response = http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.test"})
        document = http.get("/.well-known/oauth-protected-resource", headers={"Host": "evil.test"})
    metadata = "https://tasks.example.com/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in _challenge(response)
    assert document.json()["resource"] == "https://tasks.example.com/mcp"


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
def test_only_post_is_served(mcp_base: str, alice: User, method: str) -> None:
    # Stateless and JSON-only: a GET would open an event stream with nothing to send.
    headers = {**MCP_HEADERS, **alice.headers}
    response = httpx.request(method, f"{mcp_base}/mcp", headers=headers, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["code"] == "method_not_allowed"
