"""Filtered pages whose statements take a shortcut still page like the plain filter.

Tag filters: whether a page is found by walking the tasks in page order or by
collecting every tagged task (`services.tasks._tag_candidates`), paging returns the
tagged tasks exactly once each, in the order of the sort. Due-date ranges: a day bound
is the start of that day in the profile's zone, paged in either direction."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import User
from tests.dates import at, day
from tests.routes.support import create, ids, listing
from tests.routes.test_task_sorting import SORTS, expected, pages
from todo_api.services import task_list_sql

#: (title, tags, due_date, completed): tags common enough for a walk to fill small pages,
#: dated and undated tasks so `due_date` pages cross from one run to the other.
TASKS: list[tuple[str, list[str], str | None, bool]] = [
    ("b", ["red"], day(3), False),
    ("a", ["red", "blue"], None, False),
    ("c", ["blue"], day(1), True),
    ("a", ["red"], day(2), False),
    ("d", [], day(1), False),
    ("b", ["red", "blue"], None, True),
    ("e", ["red"], None, False),
    ("c", ["blue"], None, False),
    ("a", ["red", "blue"], at(1, "10:00"), False),
    ("f", ["red"], day(5), True),
    ("b", [], None, False),
    ("d", ["red"], day(4), False),
]


async def _seed(user: User) -> list[dict[str, Any]]:
    for title, tags, due, completed in TASKS:
        await create(user, title, tags=tags, due_date=due, completed=completed)
    return await listing(user)


def _carrying(tasks: list[dict[str, Any]], wanted: list[str], mode: str) -> list[dict[str, Any]]:
    check = all if mode == "all" else any
    return [task for task in tasks if check(tag in task["tags"] for tag in wanted)]


@pytest.mark.parametrize("walk", [1000, 1], ids=["walk", "collect"])
@pytest.mark.parametrize("sort", SORTS)
async def test_tag_pages_follow_the_sort_whichever_way_they_are_found(
    alice: User, monkeypatch: pytest.MonkeyPatch, walk: int, sort: str
) -> None:
    # A walk of one task can never fill a page: every page falls back to collecting.
    monkeypatch.setattr(task_list_sql, "TAG_WALK", walk)
    everything = await _seed(alice)
    cases = [(["red"], "any"), (["red", "blue"], "any"), (["red", "blue"], "all")]
    for wanted, mode in cases:
        for order in ("asc", "desc"):
            params = {"sort": sort, "order": order, "tag": wanted, "tag_mode": mode}
            walked = await pages(alice, 2, **params)
            assert all(len(page) == 2 for page in walked[:-1])
            flat = [task for page in walked for task in page]
            chosen = _carrying(everything, wanted, mode)
            assert ids(flat) == expected(chosen, sort, order), (wanted, mode, order)


@pytest.mark.parametrize("walk", [1000, 1], ids=["walk", "collect"])
async def test_tag_pages_with_status_follow_the_sort(
    alice: User, monkeypatch: pytest.MonkeyPatch, walk: int
) -> None:
    monkeypatch.setattr(task_list_sql, "TAG_WALK", walk)
    everything = await _seed(alice)
    open_tasks = [task for task in everything if not task["completed"]]
    walked = await pages(alice, 2, sort="title", status="pending", tag="red")
    flat = [task for page in walked for task in page]
    assert ids(flat) == expected(_carrying(open_tasks, ["red"], "any"), "title", "asc")


async def test_a_tag_nobody_uses_gives_an_empty_page(alice: User) -> None:
    await _seed(alice)
    assert await listing(alice, tag="unknown") == []
    assert await listing(alice, tag=["red", "unknown"], tag_mode="all") == []


# --- due-date ranges ----------------------------------------------------------------------

TOKYO = ZoneInfo("Asia/Tokyo")


def _due_instant(task: dict[str, Any]) -> datetime:
    value: str = task["due_date"]
    if "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), TOKYO)


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_due_range_pages_follow_the_sort_in_the_profile_zone(alice: User, order: str) -> None:
    await alice.patch("/api/me", json={"timezone": "Asia/Tokyo"})
    # The week from day 1 to day 8 in Tokyo (UTC+9): day 1 starts at 15:00Z on day 0.
    dues = [day(0), day(1), day(3), day(7), day(8), None]
    dues += [at(0, "14:59"), at(0, "15:00"), at(7, "14:59:59")]
    dues += [at(7, "15:00"), day(2), at(2, "03:00")]
    for n, due in enumerate(dues):
        await create(alice, f"t{n}", due_date=due, completed=n % 4 == 3)
    everything = await listing(alice)
    start = datetime.combine(date.fromisoformat(day(1)), time(), TOKYO)
    end = start + timedelta(days=7)
    inside = [
        task
        for task in everything
        if task["due_date"] is not None and start <= _due_instant(task) < end
    ]
    params = {"due_after": day(1), "due_before": day(8)}
    walked = await pages(alice, 2, sort="due_date", order=order, **params)
    flat = [task for page in walked for task in page]
    chosen = sorted(
        inside,
        key=lambda task: (_due_instant(task).astimezone(UTC), task["id"]),
        reverse=order == "desc",
    )
    assert ids(flat) == ids(chosen)
    assert len(flat) == 7
