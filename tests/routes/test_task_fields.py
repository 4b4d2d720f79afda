"""The fields of the full task model: priority, due dates, tags, reminders, and PUT."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from tests.conftest import User
from tests.dates import at, day
from tests.routes.support import assert_problem, create, create_list, read

# --- priority ----------------------------------------------------------------------------


async def test_priority_defaults_to_none(alice: User) -> None:
    assert (await create(alice))["priority"] == "none"


@pytest.mark.parametrize("priority", ["none", "low", "medium", "high"])
async def test_priority_round_trips(alice: User, priority: str) -> None:
    task = await create(alice, priority=priority)
    assert task["priority"] == priority
    assert (await read(alice, task["id"]))["priority"] == priority


@pytest.mark.parametrize("priority", ["urgent", "HIGHEST", 3, None, ""])
async def test_unknown_priority_is_422(alice: User, priority: Any) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "priority": priority})
    assert_problem(response, 422, "validation_failed")


async def test_priority_is_read_in_any_case(alice: User) -> None:
    assert (await create(alice, priority="HIGH"))["priority"] == "high"


async def test_patch_changes_priority_only(alice: User) -> None:
    task = await create(alice, description="kept", tags=["kept"])
    response = await alice.patch(f"/api/me/tasks/{task['id']}", json={"priority": "high"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        **task,
        "priority": "high",
        "updated_at": response.json()["updated_at"],
        "version": task["version"] + 1,
    }


@pytest.mark.parametrize("field", ["priority", "tags", "repeat_from"])
async def test_patch_with_null_for_a_non_nullable_field_is_422(alice: User, field: str) -> None:
    task = await create(alice)
    response = await alice.patch(f"/api/me/tasks/{task['id']}", json={field: None})
    assert_problem(response, 422, "validation_failed")


# --- due dates ---------------------------------------------------------------------------


async def test_all_day_due_date_round_trips_as_a_date(alice: User) -> None:
    task = await create(alice, due_date=day(1))
    assert task["due_date"] == day(1)
    assert (await read(alice, task["id"]))["due_date"] == day(1)


# Spellings to parse, fixed so that the test ids stay the same from day to day: nothing in
# these tests reads the clock.
@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-12-01T17:00:00Z", "2026-12-01T17:00:00Z"),
        ("2026-12-01T18:30:00+01:00", "2026-12-01T17:30:00Z"),
        ("2026-12-01t17:00:00.123456-05:00", "2026-12-01T22:00:00.123456Z"),
        ("2026-12-01T17:00:00.123456789Z", "2026-12-01T17:00:00.123456Z"),
    ],
)
async def test_due_instant_is_stored_in_utc_and_returned_with_z(
    alice: User, sent: str, stored: str
) -> None:
    task = await create(alice, due_date=sent)
    assert task["due_date"] == stored
    assert (await read(alice, task["id"]))["due_date"] == stored


@pytest.mark.parametrize(
    "due",
    [
        "2026-13-01",
        "2026-02-30",
        "01/12/2026",
        "tomorrow",
        "2026-12-01T25:00:00Z",
        20261201,
        ["2026-12-01"],
        "",
    ],
)
async def test_invalid_due_date_is_422(alice: User, due: Any) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "due_date": due})
    problem = assert_problem(response, 422, "validation_failed")
    assert problem["errors"][0]["loc"] == ["body", "due_date"]


async def test_due_date_can_switch_between_day_and_instant_and_be_cleared(alice: User) -> None:
    task = await create(alice, due_date=day(1))
    url = f"/api/me/tasks/{task['id']}"
    instant = await alice.patch(url, json={"due_date": at(2, "08:00")})
    assert instant.json()["due_date"] == at(2, "08:00")
    all_day = await alice.patch(url, json={"due_date": day(3)})
    assert all_day.json()["due_date"] == day(3)
    cleared = await alice.patch(url, json={"due_date": None})
    assert cleared.json()["due_date"] is None


async def test_extreme_due_dates_are_accepted_or_refused_cleanly(alice: User) -> None:
    for due in ("1900-01-01", "2999-12-31", "2999-12-31T23:59:59Z"):
        assert (await create(alice, due_date=due))["due_date"] == due
    for due in ("0001-01-01", "9999-12-31", "0001-01-01T00:00:00+05:00"):
        response = await alice.post("/api/me/tasks", json={"title": "t", "due_date": due})
        assert_problem(response, 422, "date_out_of_range")


# --- reminders ---------------------------------------------------------------------------


async def test_remind_at_takes_an_offset(alice: User) -> None:
    # (Without one it is a local time: tests/routes/test_local_times.py.)
    task = await create(alice, remind_at=at(1, "09:00", "+01:00"))
    assert task["remind_at"] == at(1, "08:00")
    assert task["reminder_dismissed_at"] is None


# --- tags --------------------------------------------------------------------------------


async def test_tags_are_trimmed_deduplicated_case_insensitively_and_sorted(alice: User) -> None:
    task = await create(alice, tags=["  work ", "Home", "WORK", "home", "errands"])
    assert task["tags"] == ["errands", "Home", "work"]
    assert (await read(alice, task["id"]))["tags"] == ["errands", "Home", "work"]


async def test_a_tag_keeps_its_first_spelling_across_tasks(alice: User) -> None:
    await create(alice, tags=["Work"])
    second = await create(alice, tags=["work"])
    assert second["tags"] == ["Work"]
    tags = (await alice.get("/api/me/tags")).json()
    assert [(t["name"], t["task_count"]) for t in tags] == [("Work", 2)]


@pytest.mark.parametrize(
    "names",
    [["Ünïcødé"], ["日本語"], ["🎉 party"], ["straße", "STRASSE"], ["ǅ"]],
    ids=["latin", "cjk", "emoji", "sharp-s", "titlecase"],
)
async def test_non_ascii_tags_round_trip(alice: User, names: list[str]) -> None:
    task = await create(alice, tags=names)
    # Case folding maps "straße" and "STRASSE" to one tag, as a user would expect.
    assert task["tags"] == [names[0]]
    again = await create(alice, tags=[names[0].upper()])
    assert again["tags"] == [names[0]]


@pytest.mark.parametrize(
    "tags",
    [
        [""],
        ["   "],
        ["x" * 51],
        ["a\nb"],
        ["nul\x00"],
        [f"t{i}" for i in range(21)],
        "work",
        [5],
        [None],
    ],
    ids=["empty", "blank", "51-chars", "newline", "nul", "21-tags", "string", "int", "null"],
)
async def test_invalid_tags_are_422(alice: User, tags: Any) -> None:
    response = await alice.post("/api/me/tasks", json={"title": "t", "tags": tags})
    assert_problem(response, 422, "validation_failed")


async def test_fifty_characters_and_twenty_tags_are_accepted(alice: User) -> None:
    names = [f"{i:02d}" + "é" * 48 for i in range(20)]
    assert (await create(alice, tags=names))["tags"] == names


async def test_patch_tags_replaces_the_set_and_empty_clears_it(alice: User) -> None:
    task = await create(alice, tags=["a", "b"])
    url = f"/api/me/tasks/{task['id']}"
    replaced = await alice.patch(url, json={"tags": ["b", "c"]})
    assert replaced.json()["tags"] == ["b", "c"]
    assert (await read(alice, task["id"]))["tags"] == ["b", "c"]
    cleared = await alice.patch(url, json={"tags": []})
    assert cleared.json()["tags"] == []
    counts = {t["name"]: t["task_count"] for t in (await alice.get("/api/me/tags")).json()}
    assert counts == {"a": 0, "b": 0, "c": 0}


async def test_another_users_tag_names_are_separate(alice: User, bob: User) -> None:
    await create(alice, tags=["Secret"])
    task = await create(bob, tags=["secret"])
    assert task["tags"] == ["secret"]
    assert [t["name"] for t in (await bob.get("/api/me/tags")).json()] == ["secret"]


# --- PUT keeps every field it does not name ---------------------------------------------


async def test_put_keeps_every_field_it_does_not_name(alice: User) -> None:
    garden = await create_list(alice, "Garden")
    task = await create(
        alice,
        description="old",
        priority="high",
        tags=["home"],
        due_date=day(1),
        recurrence="FREQ=WEEKLY",
        remind_at=at(1, "08:00"),
        list_id=garden["id"],
    )
    response = await alice.put(f"/api/me/tasks/{task['id']}", json={"title": "New"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["title"] == "New"
    unchanged = (
        "description",
        "completed",
        "priority",
        "tags",
        "due_date",
        "recurrence",
        "remind_at",
        "list_id",
        "position",
    )
    assert {k: body[k] for k in unchanged} == {k: task[k] for k in unchanged}


# --- quota -------------------------------------------------------------------------------


async def test_task_quota_is_a_409_with_its_code(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "tasks", 3)
    for _ in range(3):
        await create(alice)
    assert_problem(await alice.post("/api/me/tasks", json={"title": "t"}), 409, "quota_tasks")
    # Deleting frees a slot: the counter follows every delete.
    first = (await alice.get("/api/me/tasks")).json()[0]
    await alice.delete(f"/api/me/tasks/{first['id']}")
    await create(alice)


async def test_task_quota_counts_subtasks_deleted_with_their_parent(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "tasks", 3)
    parent = await create(alice)
    await create(alice, parent_id=parent["id"])
    await create(alice, parent_id=parent["id"])
    await alice.delete(f"/api/me/tasks/{parent['id']}")
    for _ in range(3):
        await create(alice)


async def test_tag_quota_is_a_409_with_its_code(
    app: FastAPI, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.quotas, "tags", 2)
    task = await create(alice, tags=["a", "b"])
    response = await alice.post("/api/me/tasks", json={"title": "t", "tags": ["a", "c"]})
    assert_problem(response, 409, "quota_tags")
    # Nothing of the refused request stayed: no task, no tag.
    assert [t["id"] for t in (await alice.get("/api/me/tasks")).json()] == [task["id"]]
    # Reusing existing tags needs no new slot.
    await create(alice, tags=["A", "b"])
