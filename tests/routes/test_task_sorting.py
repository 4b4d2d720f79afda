"""Sorting and keyset paging for every sort: defaults, NULLs last, cursors bound to their
query and user, and a property test that pages always add up to the full sorted list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import User
from tests.dates import at, day, moment
from tests.routes.support import assert_problem, create, ids, listing
from todo_api.services.fractional import keys_between

SORTS = ["created", "updated", "title", "due_date", "priority", "position"]
RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}


def _when(value: str | None) -> datetime | None:
    """A task's due sort key for a UTC profile: the instant, or midnight UTC of the day."""
    if value is None:
        return None
    if "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)


def _key(task: dict[str, Any], sort: str) -> Any:
    if sort == "created":
        return datetime.fromisoformat(task["created_at"].replace("Z", "+00:00"))
    if sort == "updated":
        return datetime.fromisoformat(task["updated_at"].replace("Z", "+00:00"))
    if sort == "title":
        return task["title"]
    if sort == "due_date":
        return _when(task["due_date"])
    if sort == "priority":
        return RANK[task["priority"]]
    return task["position"].encode()  # bytewise, as the column's C collation compares


def expected(tasks: list[dict[str, Any]], sort: str, order: str) -> list[int]:
    """The full result computed in Python: `id` breaks ties, NULLs come last."""
    descending = order == "desc"
    present = [t for t in tasks if _key(t, sort) is not None]
    absent = [t for t in tasks if _key(t, sort) is None]
    present.sort(key=lambda t: (_key(t, sort), t["id"]), reverse=descending)
    absent.sort(key=lambda t: t["id"], reverse=descending)
    return ids(present + absent)


async def pages(user: User, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    collected = []
    response = await user.get("/api/me/tasks", params={"limit": limit, **params})
    while True:
        assert response.status_code == 200, response.text
        collected.append(response.json())
        next_url = response.links.get("next", {}).get("url")
        if next_url is None:
            return collected
        response = await user.get(next_url)


# --- defaults and NULLs ------------------------------------------------------------------


async def test_each_sort_has_its_documented_default_order(alice: User) -> None:
    await create(alice, "b", priority="low", due_date=day(2))
    await create(alice, "a", priority="high")
    await create(alice, "c", priority="none", due_date=day(1))
    tasks = await listing(alice)
    defaults = {"created": "desc", "updated": "desc", "title": "asc"}
    defaults |= {"due_date": "asc", "priority": "desc", "position": "asc"}
    for sort, order in defaults.items():
        assert ids(await listing(alice, sort=sort)) == expected(tasks, sort, order), sort


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_tasks_without_a_due_date_come_last_in_both_orders(alice: User, order: str) -> None:
    undated = [await create(alice), await create(alice)]
    dated = [await create(alice, due_date=d) for d in (day(2), at(1, "10:00"))]
    found = ids(await listing(alice, sort="due_date", order=order))
    assert set(found[:2]) == set(ids(dated))
    assert found[2:] == (ids(undated) if order == "asc" else ids(undated)[::-1])


async def test_priority_sort_puts_high_first(alice: User) -> None:
    tasks = [await create(alice, priority=p) for p in ("low", "high", "none", "medium")]
    found = await listing(alice, sort="priority")
    assert [t["priority"] for t in found] == ["high", "medium", "low", "none"]
    assert set(ids(found)) == set(ids(tasks))


# --- cursors -----------------------------------------------------------------------------


async def _cursor(user: User, **params: Any) -> str:
    for n in range(3):
        await create(user, f"t{n}", tags=["x"], due_date=day(7), priority="low")
    response = await user.get("/api/me/tasks", params={"limit": 1, **params})
    cursor: str = httpx.URL(response.links["next"]["url"]).params["cursor"]
    return cursor


#: A value for every filter, each matching the tasks `_cursor` makes (due in a week: not
#: overdue).
FILTERS: dict[str, Any] = {
    "q": "t",
    "priority": "low",
    "tag": "x",
    "tag_mode": "all",
    "list_id": 0,
    "parent_id": 0,
    "due_after": day(-365),
    "due_before": day(365),
    "overdue": "false",
    "has_due": "true",
}


@pytest.mark.parametrize("name", sorted(FILTERS))
async def test_a_cursor_is_bound_to_every_filter(alice: User, name: str) -> None:
    cursor = await _cursor(alice, **FILTERS)
    assert (
        await alice.get("/api/me/tasks", params={**FILTERS, "cursor": cursor})
    ).status_code == 200
    changed = {k: v for k, v in FILTERS.items() if k != name}
    response = await alice.get("/api/me/tasks", params={**changed, "cursor": cursor})
    assert_problem(response, 422, "cursor_mismatch")


@pytest.mark.parametrize("sort", SORTS)
async def test_a_cursor_from_another_user_is_invalid(alice: User, bob: User, sort: str) -> None:
    cursor = await _cursor(alice, sort=sort)
    response = await bob.get("/api/me/tasks", params={"sort": sort, "cursor": cursor})
    body = assert_problem(response, 422, "cursor_invalid")
    assert alice.id not in response.text
    assert "cursor" in body["detail"]


# --- the property: pages concatenated == the full sorted list -------------------------------

TITLES = st.sampled_from(["a", "b", "c", "aa", "ab"])
DUES = st.sampled_from([None, None, day(1), day(2), at(1, "00:00"), at(1, "12:00")])
STAMPS = [moment(-3, 12, micro=123456), moment(-2), moment(-1)]
TASK = st.fixed_dictionaries(
    {
        "title": TITLES,
        "priority": st.sampled_from(list(RANK)),
        "due_date": DUES,
        "completed": st.booleans(),
        "created": st.integers(0, 2),
        "updated": st.integers(0, 2),
    }
)
CASE = st.fixed_dictionaries(
    {
        "tasks": st.lists(TASK, max_size=12),
        "limit": st.integers(1, 4),
        "status": st.sampled_from(["all", "pending", "completed"]),
        "shuffle": st.randoms(use_true_random=False),
    }
)


async def _arrange(user: User, conn: asyncpg.Connection, case: dict[str, Any]) -> None:
    """Create the tasks in one batch, then force ties in the timestamps and a random
    manual order (what many moves would leave behind)."""
    specs = case["tasks"]
    if not specs:
        return
    operations = [
        {"op": "create", "data": {k: s[k] for k in ("title", "priority", "due_date", "completed")}}
        for s in specs
    ]
    response = await user.post("/api/me/tasks/batch", json={"operations": operations})
    assert response.status_code == 200, response.text
    created = [r["id"] for r in response.json()["results"]]
    keys = keys_between(None, None, len(created))
    case["shuffle"].shuffle(keys)
    # The owner is subject to row-level security too: act as the user.
    await conn.execute("SELECT set_config('app.user_id', $1, false)", user.id)
    await conn.execute(
        """
        UPDATE tasks SET created_at = ($4::timestamptz[])[s.created + 1],
                         updated_at = ($4::timestamptz[])[s.updated + 1],
                         position = s.position
        FROM unnest($2::bigint[], $3::text[], $5::int[], $6::int[])
             AS s(id, position, created, updated)
        WHERE tasks.user_id = $1 AND tasks.id = s.id
        """,
        user.id,
        created,
        keys,
        STAMPS,
        [s["created"] for s in specs],
        [s["updated"] for s in specs],
    )


async def _check(user: User, conn: asyncpg.Connection, case: dict[str, Any]) -> None:
    await _arrange(user, conn, case)
    everything = await listing(user)
    status = case["status"]
    chosen = [t for t in everything if status == "all" or t["completed"] == (status == "completed")]
    for sort in SORTS:
        for order in ("asc", "desc"):
            walked = await pages(user, case["limit"], sort=sort, order=order, status=status)
            assert all(len(page) == case["limit"] for page in walked[:-1])
            flat = [task for page in walked for task in page]
            assert ids(flat) == expected(chosen, sort, order), (sort, order)


async def test_pages_concatenated_equal_the_full_sorted_result(
    new_user: Callable[..., User], owner_conn: asyncpg.Connection
) -> None:
    loop = asyncio.get_running_loop()

    def run(coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=120)

    # Hypothesis drives the examples from a worker thread; each one runs on the test's
    # event loop (where the app and the connections live) and the loop stays free.
    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=CASE)
    def check(case: dict[str, Any]) -> None:
        run(_check(new_user(), owner_conn, case))

    await asyncio.to_thread(check)
