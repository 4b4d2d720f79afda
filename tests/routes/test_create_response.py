"""A created task is returned with its own tags and links, never another task's."""

from __future__ import annotations

from tests.conftest import User
from tests.dates import day


async def test_created_task_carries_only_its_own_tags(alice: User) -> None:
    await alice.create_task("first", tags=["home", "garden"])
    second = await alice.create_task("second", tags=["work"])
    assert second["tags"] == ["work"]
    untagged = await alice.create_task("third")
    assert untagged["tags"] == []


async def test_create_still_works_once_several_tasks_have_next_occurrences(alice: User) -> None:
    for title in ("water plants", "pay rent"):
        task = await alice.create_task(title, due_date=day(1), recurrence="FREQ=WEEKLY")
        completed = await alice.patch(f"/api/me/tasks/{task['id']}/complete")
        assert completed.status_code == 200, completed.text
        assert completed.json()["next_occurrence_id"] is not None
    created = await alice.post("/api/me/tasks", json={"title": "plain"})
    assert created.status_code == 201, created.text
    assert created.json()["next_occurrence_id"] is None
