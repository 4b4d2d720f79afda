"""Every tool's happy path and its errors, compared with what REST answers."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import User, make_settings
from tests.dates import day
from tests.live_server import serve
from tests.mcp_client import Agent
from todo_api.main import create_app

MISSING = 2**63 - 1


async def rest_task(user: User, task_id: int) -> dict[str, Any]:
    response = await user.get(f"/api/me/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_add_task_returns_the_task_as_rest_does(alice_agent: Agent, alice: User) -> None:
    result = await alice_agent.call(
        "add_task",
        {"title": "  Water the plants ", "priority": "HIGH", "tags": ["home"], "due_date": day(3)},
    )
    assert not result.is_error
    task = result.structured_content
    assert task is not None
    assert task == await rest_task(alice, task["id"])
    assert (task["title"], task["priority"], task["tags"]) == ("Water the plants", "high", ["home"])
    assert task["user_id"] == alice.id
    assert f"task {task['id']}" in getattr(result.content[0], "text", "")


async def test_add_task_refuses_invalid_arguments(alice_agent: Agent) -> None:
    empty = await alice_agent.error("add_task", {"title": "   "})
    assert (empty["status"], empty["code"]) == (422, "validation_failed")
    assert empty["errors"][0]["loc"] == ["title"]
    unknown = await alice_agent.error("add_task", {"title": "x", "user_id": "someone-else"})
    assert unknown["code"] == "validation_failed"
    assert unknown["errors"][0]["loc"] == ["user_id"]
    nothing = await alice_agent.error("add_task", {})
    assert nothing["errors"][0]["type"] == "missing"


async def test_add_task_into_a_missing_list_is_list_not_found(alice_agent: Agent) -> None:
    problem = await alice_agent.error("add_task", {"title": "x", "list_id": MISSING})
    assert (problem["status"], problem["code"]) == (422, "list_not_found")


async def test_get_task(alice_agent: Agent, alice: User) -> None:
    created = await alice.create_task("Read me", description="details")
    assert await alice_agent.ok("get_task", {"task_id": created["id"]}) == created
    missing = await alice_agent.error("get_task", {"task_id": MISSING})
    assert (missing["status"], missing["code"]) == (404, "task_not_found")
    assert missing["detail"] == (await alice.get(f"/api/me/tasks/{MISSING}")).json()["detail"]
    wrong = await alice_agent.error("get_task", {"task_id": "1"})
    assert wrong["code"] == "validation_failed"
    zero = await alice_agent.error("get_task", {"task_id": 0})
    assert zero["code"] == "validation_failed"


async def test_list_tasks_filters_searches_and_sorts(alice_agent: Agent, alice: User) -> None:
    milk = await alice.create_task("Buy milk", priority="low", tags=["shop"])
    bread = await alice.create_task("Buy bread", priority="high", tags=["shop"])
    await alice.create_task("Call mum")
    done = await alice.create_task("Buy eggs", completed=True)
    found = await alice_agent.ok("list_tasks", {"q": "buy", "status": "pending", "sort": "title"})
    assert [task["id"] for task in found["tasks"]] == [bread["id"], milk["id"]]
    assert found["next_cursor"] is None
    rest = await alice.get(
        "/api/me/tasks", params={"q": "buy", "status": "pending", "sort": "title"}
    )
    assert found["tasks"] == rest.json()
    high = await alice_agent.ok("list_tasks", {"priority": ["high"], "tag": ["shop"]})
    assert [task["id"] for task in high["tasks"]] == [bread["id"]]
    completed = await alice_agent.ok("list_tasks", {"completed": True})
    assert [task["id"] for task in completed["tasks"]] == [done["id"]]


async def test_list_tasks_pages_with_the_cursor(alice_agent: Agent, alice: User) -> None:
    ids = {(await alice.create_task(f"Page {n}"))["id"] for n in range(5)}
    seen: list[int] = []
    arguments: dict[str, Any] = {"limit": 2, "sort": "created", "order": "asc"}
    while True:
        page = await alice_agent.ok("list_tasks", arguments)
        seen += [task["id"] for task in page["tasks"]]
        if page["next_cursor"] is None:
            break
        arguments = {**arguments, "cursor": page["next_cursor"]}
    assert seen == sorted(ids)


async def test_list_tasks_refuses_bad_arguments(alice_agent: Agent, alice: User) -> None:
    sort = await alice_agent.error("list_tasks", {"sort": "colour"})
    assert (sort["code"], sort["errors"][0]["loc"]) == ("validation_failed", [])
    unknown = await alice_agent.error("list_tasks", {"colour": "red"})
    assert unknown["errors"][0]["loc"] == ["colour"]
    limit = await alice_agent.error("list_tasks", {"limit": 201})
    assert limit["errors"][0]["loc"] == ["limit"]
    cursor = await alice_agent.error("list_tasks", {"cursor": "not-a-cursor"})
    rest = (await alice.get("/api/me/tasks", params={"cursor": "not-a-cursor"})).json()
    assert (cursor["status"], cursor["code"], cursor["detail"]) == (
        rest["status"],
        rest["code"],
        rest["detail"],
    )


async def test_update_task_changes_only_the_fields_given(alice_agent: Agent, alice: User) -> None:
    task = await alice.create_task("Old", description="keep?", priority="low")
    updated = await alice_agent.ok(
        "update_task", {"task_id": task["id"], "title": "New", "description": None}
    )
    assert updated == await rest_task(alice, task["id"])
    assert (updated["title"], updated["description"], updated["priority"]) == ("New", None, "low")
    assert updated["version"] == task["version"] + 1


async def test_update_task_errors(alice_agent: Agent, alice: User) -> None:
    task = await alice.create_task("Versioned")
    stale = await alice_agent.error(
        "update_task", {"task_id": task["id"], "title": "Late", "if_version": task["version"] + 5}
    )
    assert (stale["status"], stale["code"]) == (412, "version_mismatch")
    assert stale["current"]["title"] == "Versioned"
    null_title = await alice_agent.error("update_task", {"task_id": task["id"], "title": None})
    assert null_title["code"] == "validation_failed"
    missing = await alice_agent.error("update_task", {"task_id": MISSING, "title": "x"})
    assert missing["code"] == "task_not_found"
    assert (await rest_task(alice, task["id"]))["title"] == "Versioned"


async def test_complete_task_toggles_or_sets(alice_agent: Agent, alice: User) -> None:
    task = await alice.create_task("Finish")
    toggled = await alice_agent.ok("complete_task", {"task_id": task["id"]})
    assert toggled["completed"] is True and toggled["completed_at"] is not None
    assert toggled["open_subtask_ids"] == []
    again = await alice_agent.ok("complete_task", {"task_id": task["id"], "completed": True})
    assert again["completed"] is True
    back = await alice_agent.ok("complete_task", {"task_id": task["id"]})
    assert back["completed"] is False
    rest = await rest_task(alice, task["id"])
    assert {k: v for k, v in back.items() if k != "open_subtask_ids"} == rest
    missing = await alice_agent.error("complete_task", {"task_id": MISSING})
    assert missing["code"] == "task_not_found"
    lax = await alice_agent.error("complete_task", {"task_id": task["id"], "completed": "yes"})
    assert lax["code"] == "validation_failed"


async def test_delete_task(alice_agent: Agent, alice: User) -> None:
    task = await alice.create_task("Doomed")
    deleted = await alice_agent.ok("delete_task", {"task_id": task["id"]})
    assert deleted == task
    assert (await alice.get(f"/api/me/tasks/{task['id']}")).status_code == 404
    again = await alice_agent.error("delete_task", {"task_id": task["id"]})
    assert (again["status"], again["code"]) == (404, "task_not_found")


async def test_list_lists_and_tags_as_rest(alice_agent: Agent, alice: User) -> None:
    created = await alice.post("/api/me/lists", json={"name": "Errands"})
    assert created.status_code == 201
    await alice.create_task("Tagged", tags=["Errand", "home"])
    lists = await alice_agent.ok("list_lists")
    assert lists == {"lists": (await alice.get("/api/me/lists")).json()}
    assert [entry["name"] for entry in lists["lists"]] == ["Errands"]
    tags = await alice_agent.ok("list_tags")
    assert tags == {"tags": (await alice.get("/api/me/tags")).json()}
    assert [tag["name"] for tag in tags["tags"]] == ["Errand", "home"]
    extra = await alice_agent.error("list_tags", {"all": True})
    assert extra["code"] == "validation_failed"


async def test_writes_appear_in_rest_and_the_change_feed(alice_agent: Agent, alice: User) -> None:
    start = (await alice.get("/api/me/changes")).json()["next"]
    task = await alice_agent.ok("add_task", {"title": "From the agent"})
    await alice_agent.ok("complete_task", {"task_id": task["id"], "completed": True})
    gone = await alice_agent.ok("add_task", {"title": "Short-lived"})
    await alice_agent.ok("delete_task", {"task_id": gone["id"]})
    feed = (await alice.get("/api/me/changes", params={"since": start})).json()
    by_id = {change["id"]: change for change in feed["changes"]}
    assert by_id[task["id"]]["op"] == "upsert"
    assert by_id[task["id"]]["object"] == await rest_task(alice, task["id"])
    assert by_id[task["id"]]["object"]["completed"] is True
    assert (by_id[gone["id"]]["op"], by_id[gone["id"]]["reason"]) == ("delete", "deleted")


async def test_unknown_tool_is_a_protocol_error(alice_agent: Agent) -> None:
    with pytest.raises(MCPError) as raised:
        await alice_agent.call("drop_tables")
    assert raised.value.code == types.INVALID_PARAMS
    # The connection is still good.
    assert await alice_agent.ok("list_tags") == {"tags": []}


async def test_require_if_match_needs_if_version_on_writes(owner_url: str, alice: User) -> None:
    settings = make_settings(owner_url, require_if_match=True)
    task = await alice.create_task("Guarded")
    with serve(create_app(settings)) as base_url:
        agent = Agent(base_url, alice)
        for tool in ("update_task", "complete_task", "delete_task"):
            refused = await agent.error(tool, {"task_id": task["id"]})
            assert (refused["status"], refused["code"]) == (428, "precondition_required"), tool
        done = await agent.ok("complete_task", {"task_id": task["id"], "if_version": 1})
        assert done["completed"] is True
    assert (await rest_task(alice, task["id"]))["version"] == 2
