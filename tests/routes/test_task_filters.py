"""The list endpoint's search, filters and sorts, and what its cursors are bound to."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.conftest import User
from tests.dates import at, day, moment
from tests.routes.support import (
    assert_problem,
    create,
    create_list,
    frozen_now,
    ids,
    listing,
    utc,
)

# --- q -----------------------------------------------------------------------------------


@pytest.fixture
async def library(alice: User) -> dict[str, dict[str, Any]]:
    specs = {
        "milk": ("Buy MILK", None),
        "oat": ("Groceries", "oat milk, 2 l"),
        "unicode": ("Ünïcødé résumé", None),
        "cjk": ("会議", "日本語のメモ"),
        "emoji": ("Party 🎉 prep", None),
        "percent": ("Save 50% now", None),
        "underscore": ("file_name.txt", None),
        "plain": ("abc", "fileXname"),
    }
    return {key: await create(alice, title, description=d) for key, (title, d) in specs.items()}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("milk", {"milk", "oat"}),
        ("MiLk", {"milk", "oat"}),
        ("ünïcødé", {"unicode"}),
        ("RÉSUMÉ", {"unicode"}),
        ("日本語", {"cjk"}),
        ("議", {"cjk"}),
        ("🎉", {"emoji"}),
        ("50%", {"percent"}),
        ("%", {"percent"}),
        ("e_n", {"underscore"}),
        ("_", {"underscore"}),
        ("\\", set()),
        ("nothing like it", set()),
    ],
)
async def test_q_is_a_case_insensitive_substring_of_title_or_description(
    alice: User, library: dict[str, dict[str, Any]], q: str, expected: set[str]
) -> None:
    found = set(ids(await listing(alice, q=q)))
    assert found == {library[key]["id"] for key in expected}


@pytest.mark.parametrize("q", ["", "   ", "a\x00b", "x" * 201, "line\nbreak"])
async def test_invalid_q_is_422(alice: User, q: str) -> None:
    assert_problem(await alice.get("/api/me/tasks", params={"q": q}), 422, "validation_failed")


async def test_q_never_finds_another_users_tasks(alice: User, bob: User) -> None:
    await create(alice, "alice's secret plan")
    assert await listing(bob, q="secret") == []


async def test_trigram_extensions_are_installed_by_the_non_superuser_owner(
    owner_conn: asyncpg.Connection,
) -> None:
    assert not await owner_conn.fetchval(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    installed = {r["extname"] for r in await owner_conn.fetch("SELECT extname FROM pg_extension")}
    assert {"pg_trgm", "btree_gin"} <= installed


# --- filters -----------------------------------------------------------------------------


async def test_priority_filter_is_repeatable(alice: User) -> None:
    tasks = {p: await create(alice, priority=p) for p in ("none", "low", "medium", "high")}
    found = await listing(alice, priority=["high", "low"])
    assert set(ids(found)) == {tasks["high"]["id"], tasks["low"]["id"]}


@pytest.fixture
async def tagged(alice: User) -> dict[str, dict[str, Any]]:
    return {
        "a": await create(alice, tags=["Work"]),
        "ab": await create(alice, tags=["work", "home"]),
        "b": await create(alice, tags=["HOME"]),
        "none": await create(alice),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tag": "work"}, {"a", "ab"}),
        ({"tag": "WORK"}, {"a", "ab"}),
        ({"tag": ["work", "home"]}, {"a", "ab", "b"}),
        ({"tag": ["work", "home"], "tag_mode": "any"}, {"a", "ab", "b"}),
        ({"tag": ["work", "home"], "tag_mode": "all"}, {"ab"}),
        ({"tag": ["work", "Work"], "tag_mode": "all"}, {"a", "ab"}),
        ({"tag": "unknown"}, set()),
    ],
)
async def test_tag_filter_with_any_and_all(
    alice: User, tagged: dict[str, dict[str, Any]], params: dict[str, Any], expected: set[str]
) -> None:
    assert set(ids(await listing(alice, **params))) == {tagged[k]["id"] for k in expected}


async def test_tag_filter_never_matches_another_users_tag(alice: User, bob: User) -> None:
    await create(alice, tags=["shared-name"])
    mine = await create(bob, tags=["shared-name"])
    assert ids(await listing(bob, tag="shared-name")) == [mine["id"]]


async def test_list_and_parent_filters_with_zero_for_inbox_and_top_level(alice: User) -> None:
    garden = await create_list(alice, "Garden")
    inbox = await create(alice)
    in_list = await create(alice, list_id=garden["id"])
    child = await create(alice, parent_id=in_list["id"])
    assert set(ids(await listing(alice, list_id=0))) == {inbox["id"]}
    assert set(ids(await listing(alice, list_id=garden["id"]))) == {in_list["id"], child["id"]}
    assert set(ids(await listing(alice, parent_id=in_list["id"]))) == {child["id"]}
    assert set(ids(await listing(alice, parent_id=0))) == {inbox["id"], in_list["id"]}


async def test_another_users_list_id_in_a_filter_shows_nothing(alice: User, bob: User) -> None:
    theirs = await create_list(alice)
    await create(alice, list_id=theirs["id"])
    assert await listing(bob, list_id=theirs["id"]) == []


async def test_due_range_and_has_due(alice: User) -> None:
    all_day = await create(alice, due_date=day(1))
    morning = await create(alice, due_date=at(1, "09:00"))
    next_day = await create(alice, due_date=day(2))
    undated = await create(alice)
    same_day = {"due_after": day(1), "due_before": day(2)}
    assert set(ids(await listing(alice, **same_day))) == {all_day["id"], morning["id"]}
    assert set(ids(await listing(alice, due_after=at(1, "09:00")))) == {
        morning["id"],
        next_day["id"],
    }
    assert set(ids(await listing(alice, has_due="false"))) == {undated["id"]}
    assert len(await listing(alice, has_due="true")) == 3


async def test_a_date_bound_means_the_start_of_that_day_in_the_profile_zone(alice: User) -> None:
    await alice.patch("/api/me", json={"timezone": "Asia/Tokyo"})
    late = await create(alice, due_date=at(0, "16:00"))  # 01:00 on day 1 in Tokyo
    found = await listing(alice, due_after=day(1), due_before=day(2))
    assert ids(found) == [late["id"]]


@pytest.mark.parametrize("bound", ["2026-12-01T00:00:00+25:00", "soon", "2026-12-32"])
async def test_invalid_due_bounds_are_422(alice: User, bound: str) -> None:
    response = await alice.get("/api/me/tasks", params={"due_before": bound})
    assert_problem(response, 422, "validation_failed")


# --- overdue, at daylight-saving edges ------------------------------------------------------

OVERDUE_CASES = [
    # New York springs forward on 2026-03-08: that day has 23 hours and ends at 04:00Z.
    ("America/New_York", "2026-03-08", utc(2026, 3, 9, 3, 59), False),
    ("America/New_York", "2026-03-08", utc(2026, 3, 9, 4, 0), True),
    # Berlin falls back on 2026-10-25: that day has 25 hours and ends at 23:00Z.
    ("Europe/Berlin", "2026-10-25", utc(2026, 10, 25, 22, 59), False),
    ("Europe/Berlin", "2026-10-25", utc(2026, 10, 25, 23, 0), True),
    ("UTC", "2026-10-25", utc(2026, 10, 25, 23, 59), False),
    ("UTC", "2026-10-25", utc(2026, 10, 26, 0, 0), True),
]


@pytest.mark.parametrize(("zone", "due", "now", "overdue"), OVERDUE_CASES)
async def test_an_all_day_task_is_overdue_once_its_day_ended_in_the_profile_zone(
    alice: User, monkeypatch: pytest.MonkeyPatch, zone: str, due: str, now: Any, overdue: bool
) -> None:
    await alice.patch("/api/me", json={"timezone": zone})
    task = await create(alice, due_date=due)
    with frozen_now(monkeypatch, now):
        assert (task["id"] in ids(await listing(alice, overdue="true"))) is overdue
        assert (task["id"] in ids(await listing(alice, overdue="false"))) is not overdue


async def test_an_instant_is_overdue_right_after_it_and_completed_tasks_never_are(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = await create(alice, due_date=at(1, "12:00"))
    done = await create(alice, due_date=day(-6), completed=True)
    undated = await create(alice)
    with frozen_now(monkeypatch, moment(1, 12, 0, 1)):
        assert ids(await listing(alice, overdue="true")) == [due["id"]]
        assert set(ids(await listing(alice, overdue="false"))) == {done["id"], undated["id"]}
    with frozen_now(monkeypatch, moment(1, 11, 59)):
        assert await listing(alice, overdue="true") == []


async def test_changing_the_zone_recomputes_where_all_day_tasks_sort(alice: User) -> None:
    all_day = await create(alice, due_date=day(1))
    early = await create(alice, due_date=at(1, "06:00"))
    # Midnight UTC comes before 06:00Z; midnight in Los Angeles (07:00Z or 08:00Z) after.
    assert ids(await listing(alice, sort="due_date")) == [all_day["id"], early["id"]]
    await alice.patch("/api/me", json={"timezone": "America/Los_Angeles"})
    assert ids(await listing(alice, sort="due_date")) == [early["id"], all_day["id"]]
    await alice.patch("/api/me", json={"timezone": None})
    assert ids(await listing(alice, sort="due_date")) == [all_day["id"], early["id"]]


async def test_changing_the_zone_changes_when_an_all_day_task_falls_overdue(
    alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await create(alice, due_date=day(1))
    with frozen_now(monkeypatch, moment(1, 23, 30)):
        assert await listing(alice, overdue="true") == []
        await alice.patch("/api/me", json={"timezone": "Pacific/Kiritimati"})  # UTC+14
        assert ids(await listing(alice, overdue="true")) == [task["id"]]
