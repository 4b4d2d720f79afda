"""A database outage under an MCP call is a tool error the agent can retry on, never a
protocol error; once the database is back, calls work again."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.conftest import User, make_settings
from tests.faults import FaultProxy
from tests.live_server import serve
from tests.mcp_client import Agent
from todo_api.main import create_app


async def test_database_outage_is_a_retryable_tool_error(owner_url: str, alice: User) -> None:
    proxy = FaultProxy(owner_url)
    await proxy.start()
    settings = make_settings(proxy.url, database_connect_timeout=2, database_pool_timeout=2)
    with contextlib.ExitStack() as stack:
        # Started in a thread: the proxy needs this event loop free meanwhile.
        base_url = await asyncio.to_thread(stack.enter_context, serve(create_app(settings)))
        agent = Agent(base_url, alice)
        assert (await agent.ok("list_tags")) == {"tags": []}
        await proxy.cut()
        problem = await agent.error("add_task", {"title": "During the outage"})
        assert (problem["status"], problem["code"]) == (503, "database_unavailable")
        assert problem["retry_after"] == 2
        await proxy.restore()
        # The deadline only keeps a service that never recovers from hanging the run.
        deadline = time.monotonic() + 15
        while True:
            result = await agent.call("add_task", {"title": "After the outage"})
            if not result.is_error:
                break
            assert (result.structured_content or {}).get("code") == "database_unavailable"
            assert time.monotonic() < deadline, "the service did not recover by itself"
            await asyncio.sleep(0.2)
        assert (result.structured_content or {})["title"] == "After the outage"
        await asyncio.to_thread(stack.close)
    await proxy.close()
