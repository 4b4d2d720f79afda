"""What MCP calls leave in the server's logs: the access line, never the arguments;
for a bug, the traceback for operators and a generic error for the agent."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from tests.conftest import User
from tests.mcp_client import Agent
from tests.test_logging import LOGGERS, assert_absent, rendered
from todo_api.services import task_list

#: The test's own MCP client logs the messages it sends; that is not the server's log.
CLIENT_LOGGERS = ("mcp.client", "httpx2", "httpcore2")


def server_lines(records: list[logging.LogRecord]) -> list[str]:
    return rendered([r for r in records if not r.name.startswith(CLIENT_LOGGERS)])


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in [*LOGGERS, "mcp"]:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def test_tool_arguments_and_results_are_not_logged(
    every_log: pytest.LogCaptureFixture, alice_agent: Agent, alice: User
) -> None:
    marker = f"secret-{uuid.uuid4().hex}"
    await alice_agent.ok("add_task", {"title": marker})
    await alice_agent.error("add_task", {"title": marker, "description": "x" * 3000})
    await alice_agent.ok("list_tasks", {"q": marker})
    access = [r for r in every_log.records if r.name == "todo_api.access"]
    assert any(vars(r)["route"] == "/mcp" and vars(r)["status"] == 200 for r in access)
    assert_absent(server_lines(every_log.records), {"tool argument": marker, "token": alice.token})


async def test_a_bug_in_a_tool_is_a_generic_tool_error_and_a_logged_traceback(
    every_log: pytest.LogCaptureFixture, alice_agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the list query is broken")

    monkeypatch.setattr(task_list, "list_tasks", broken)
    marker = f"search-{uuid.uuid4().hex}"
    problem = await alice_agent.error("list_tasks", {"q": marker})
    assert (problem["status"], problem["code"]) == (500, "internal_error")
    assert "broken" not in problem["detail"]
    assert problem["request_id"]
    errors = [r for r in every_log.records if r.name == "todo_api.errors"]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert vars(errors[0])["request_id"] == problem["request_id"]
    assert_absent(server_lines(every_log.records), {"tool argument": marker})
