"""Round trips of the full task model's reads and writes, counted on the wire.

Reuses the wire counter of `tests/test_round_trips.py` (a loopback proxy that counts every
exchange the app waits for). Budgets: a read is BEGIN + user context + one query +
COMMIT; a simple write at most 5, tags included (never one statement per tag).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_round_trips as counting
from tests.dates import at, day
from tests.test_round_trips import READ_BUDGET, WRITE_BUDGET, Caller, _explain

# The wire-counting fixtures, shared with `tests/test_round_trips.py`.
wire = counting.wire
api = counting.api
caller = counting.caller

TAGS = [f"tag-{n}" for n in range(10)]


async def _new(caller: Caller, **fields: Any) -> dict[str, Any]:
    response = await caller.send("POST", "/api/me/tasks", json={"title": "t", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def tagged_caller(caller: Caller) -> Caller:
    for n in range(20):
        await _new(caller, tags=TAGS[: n % 5 + 1], due_date=day(1) if n % 2 else None)
    return caller


@pytest.mark.parametrize(
    "query",
    [
        "limit=50",
        "tag=tag-1&tag=tag-2&tag_mode=all",
        "q=t&status=pending&sort=priority",
        "sort=due_date&order=desc&limit=5",
        "sort=due_date&overdue=true",
        "list_id=0&parent_id=0&sort=position",
        # A range around the tasks' due date, filled in at test time (the id stays put).
        "due_after={month_ago}&due_before={in_a_month}",
    ],
)
async def test_filtered_lists_with_tags_are_one_query(tagged_caller: Caller, query: str) -> None:
    query = query.format(month_ago=day(-30), in_a_month=day(30))
    trips = await tagged_caller.trips("GET", f"/api/me/tasks?{query}")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_get_one_with_tags_is_one_query(caller: Caller) -> None:
    task = await _new(caller, tags=TAGS)
    trips = await caller.trips("GET", f"/api/me/tasks/{task['id']}")
    assert len(trips) <= READ_BUDGET, _explain(trips)


async def test_reads_of_lists_tags_and_reminders_are_one_query(tagged_caller: Caller) -> None:
    for url in ("/api/me/lists", "/api/me/tags", "/api/me/reminders"):
        trips = await tagged_caller.trips("GET", url)
        assert len(trips) <= READ_BUDGET, (url, _explain(trips))


async def test_create_with_ten_tags_is_within_the_write_budget(caller: Caller) -> None:
    body = {"title": "t", "tags": TAGS, "due_date": day(1), "priority": "high"}
    trips = await caller.trips("POST", "/api/me/tasks", json=body)
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_patch_with_ten_tags_is_within_the_write_budget(caller: Caller) -> None:
    task = await _new(caller, tags=TAGS[:3])
    body = {"tags": TAGS, "due_date": at(1, "10:00"), "remind_at": at(1, "09:00")}
    trips = await caller.trips("PATCH", f"/api/me/tasks/{task['id']}", json=body)
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_completing_a_recurring_task_is_within_the_write_budget(caller: Caller) -> None:
    fields = {"tags": TAGS, "due_date": day(1), "recurrence": "FREQ=DAILY"}
    warm, counted = await _new(caller, **fields), await _new(caller, **fields)
    await caller.send("PATCH", f"/api/me/tasks/{warm['id']}/complete")
    caller.wire.reset()
    response = await caller.send("PATCH", f"/api/me/tasks/{counted['id']}/complete")
    assert response.json()["next_occurrence_id"] is not None
    trips = list(caller.wire.trips)
    assert len(trips) <= WRITE_BUDGET, _explain(trips)


async def test_a_move_takes_a_bounded_number_of_round_trips(caller: Caller) -> None:
    # BEGIN, context, lock the rows, lock the owner, read the neighbour, update, COMMIT.
    first, _, third = [await _new(caller) for _ in range(3)]
    url = f"/api/me/tasks/{third['id']}/move"
    trips = await caller.trips("POST", url, json={"after": first["id"]})
    assert len(trips) <= 7, _explain(trips)


async def test_a_patch_with_if_match_is_within_the_write_budget(caller: Caller) -> None:
    # The version check is part of the UPDATE: no read before the write.
    task = await _new(caller)
    url = f"/api/me/tasks/{task['id']}"
    warm = {**caller.headers, "If-Match": '"1"'}
    await caller.api.request("PATCH", url, json={"title": "warm"}, headers=warm)
    caller.wire.reset()
    headers = {**caller.headers, "If-Match": '"2"'}
    response = await caller.api.request("PATCH", url, json={"title": "x"}, headers=headers)
    assert response.status_code == 200, response.text
    trips = list(caller.wire.trips)
    assert len(trips) <= 4, _explain(trips)


async def test_a_create_with_an_idempotency_key_costs_two_more_round_trips(
    caller: Caller,
) -> None:
    # BEGIN, context, claim the key, insert, store the response, COMMIT.
    for n in range(2):
        caller.wire.reset()
        headers = {**caller.headers, "Idempotency-Key": f'"trips-{n}"'}
        response = await caller.api.post("/api/me/tasks", json={"title": "t"}, headers=headers)
        assert response.status_code == 201, response.text
    trips = list(caller.wire.trips)
    assert len(trips) <= WRITE_BUDGET + 1, _explain(trips)


async def test_a_change_feed_read_is_one_query_per_kind_changed(caller: Caller) -> None:
    since = (await caller.send("GET", "/api/me/changes")).json()["next"]
    await _new(caller)
    trips = await caller.trips("GET", f"/api/me/changes?since={since}")
    # BEGIN, context, the feed, the tasks it names, COMMIT.
    assert len(trips) <= READ_BUDGET + 1, _explain(trips)
