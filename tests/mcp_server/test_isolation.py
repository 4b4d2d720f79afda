"""Two users: an agent acts as its token's subject only. Another user's ids are
`task_not_found` (or `list_not_found`), exactly as ids that exist nowhere, and change
nothing."""

from __future__ import annotations

from typing import Any

from tests.conftest import User
from tests.mcp_client import Agent

MISSING = 2**63 - 1


async def _snapshot(user: User) -> dict[str, Any]:
    return {
        "tasks": (await user.get("/api/me/tasks", params={"limit": 200})).json(),
        "lists": (await user.get("/api/me/lists")).json(),
        "tags": (await user.get("/api/me/tags")).json(),
    }


async def test_other_users_task_ids_are_task_not_found_and_change_nothing(
    alice: User, bob_agent: Agent
) -> None:
    task = await alice.create_task("Alice's secret", tags=["private"])
    before = await _snapshot(alice)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_task", {}),
        ("update_task", {"title": "Hijacked"}),
        ("complete_task", {}),
        ("complete_task", {"completed": True}),
        ("delete_task", {}),
    ]
    for tool, extra in calls:
        attack = await bob_agent.error(tool, {"task_id": task["id"], **extra})
        absent = await bob_agent.error(tool, {"task_id": MISSING, **extra})
        assert (attack["status"], attack["code"]) == (404, "task_not_found"), tool
        # Only the id differs: nothing tells Bob that Alice's task exists.
        assert attack["detail"].replace(str(task["id"]), "N") == absent["detail"].replace(
            str(MISSING), "N"
        )
    assert await _snapshot(alice) == before


async def test_other_users_lists_and_parents_are_refused(alice: User, bob_agent: Agent) -> None:
    alices_list = (await alice.post("/api/me/lists", json={"name": "Alice's"})).json()
    parent = await alice.create_task("Alice's parent")
    before = await _snapshot(alice)
    for field, victim in (("list_id", alices_list["id"]), ("parent_id", parent["id"])):
        attack = await bob_agent.error("add_task", {"title": "Smuggled", field: victim})
        absent = await bob_agent.error("add_task", {"title": "Smuggled", field: MISSING})
        assert (attack["status"], attack["code"]) == (absent["status"], absent["code"])
        assert attack["code"] in {"list_not_found", "parent_not_found"}
        page = await bob_agent.ok("list_tasks", {field: victim})
        assert page == {"tasks": [], "next_cursor": None}
    assert await _snapshot(alice) == before


async def test_an_agent_sees_only_its_users_data(
    alice: User, bob: User, alice_agent: Agent, bob_agent: Agent
) -> None:
    await alice.create_task("Alice's only", tags=["alice-tag"])
    await alice.post("/api/me/lists", json={"name": "Alice's list"})
    mine = await bob_agent.ok("add_task", {"title": "Bob's own"})
    assert mine["user_id"] == bob.id
    seen = await bob_agent.ok("list_tasks", {"limit": 200})
    assert [task["id"] for task in seen["tasks"]] == [mine["id"]]
    assert await bob_agent.ok("list_lists") == {"lists": []}
    assert await bob_agent.ok("list_tags") == {"tags": []}
    searched = await bob_agent.ok("list_tasks", {"q": "Alice"})
    assert searched["tasks"] == []
    # And Alice's agent sees her task, not Bob's.
    hers = await alice_agent.ok("list_tasks", {"limit": 200})
    assert [task["title"] for task in hers["tasks"]] == ["Alice's only"]
