"""The official MCP client, over real HTTP, for tests: a session with a user's token,
and `Agent`, a user's agent calling tools.

The server under test is `mcp_base` (tests/conftest.py): a second instance of the app
(uvicorn in a thread) on the suite's database, so what a user does through REST (the
`alice`/`bob` fixtures, in process) and what their agent does through MCP meet in the
same rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from tests.conftest import User


@asynccontextmanager
async def connect(
    base_url: str, token: str, *, mode: str = "auto", **http: Any
) -> AsyncIterator[Client]:
    """An MCP client session sending `Authorization: Bearer <token>`."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, **http) as client:
        transport = streamable_http_client(f"{base_url}/mcp", http_client=client)
        async with Client(transport, mode=mode) as session:  # type: ignore[arg-type]
            yield session


def first_leaf(error: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups, as the task groups of the
    client's transport wrap it."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


class Agent:
    """A user's agent: calls tools over MCP with the user's token.

    Each call opens its own client session (the server keeps none, so that costs one
    extra request): an anyio task group cannot be entered in a fixture and left in the
    test, as pytest-asyncio runs the two in different tasks.
    """

    def __init__(self, base_url: str, user: User) -> None:
        self.base_url = base_url
        self.user = user

    async def call(self, tool: str, arguments: dict[str, Any] | None = None) -> CallToolResult:
        """One `tools/call`; a protocol error is raised as the client's `MCPError`."""
        try:
            async with connect(self.base_url, self.user.token) as client:
                return await client.call_tool(tool, arguments or {})
        except BaseExceptionGroup as group:
            raise first_leaf(group) from None

    async def ok(self, tool: str, arguments: dict[str, Any] | None = None) -> Any:
        """Call `tool`; it must succeed; returns its structured result."""
        result = await self.call(tool, arguments)
        assert not result.is_error, result.content
        return result.structured_content

    async def error(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call `tool`; it must fail as a tool error; returns the problem it carries."""
        result = await self.call(tool, arguments)
        assert result.is_error, result.structured_content
        problem = result.structured_content
        assert isinstance(problem, dict)
        text = result.content[0]
        assert isinstance(text, TextContent)
        assert text.text == f"{problem['code']}: {problem['detail']}"
        return problem
