"""Recurrence rules dateutil cannot expand are a 422 `recurrence_invalid` on every way
in; a property-based run over the RRULE grammar the API accepts never reaches a 500,
and every rule it stores can be completed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import User
from tests.dates import day
from tests.routes.support import assert_problem, create

#: Found by the adversarial pass: ordinal weekdays past a month's length under BYMONTH.
UNEXPANDABLE = [
    "FREQ=YEARLY;BYDAY=53MO;BYMONTH=12",
    "FREQ=YEARLY;BYDAY=8MO;BYMONTH=12",
    "FREQ=YEARLY;BYDAY=-20FR;BYMONTH=3,6",
    "FREQ=YEARLY;BYMONTH=1;BYDAY=6SU;BYSETPOS=1",
]


async def _write(user: User, how: str, rule: str, task_id: int) -> httpx.Response:
    fields = {"title": "t", "due_date": day(1), "recurrence": rule}
    if how == "post":
        return await user.post("/api/me/tasks", json=fields)
    if how == "patch":
        return await user.patch(f"/api/me/tasks/{task_id}", json={"recurrence": rule})
    if how == "put":
        return await user.put(f"/api/me/tasks/{task_id}", json={"recurrence": rule})
    if how == "batch-create":
        operation: dict[str, Any] = {"op": "create", "data": fields}
    else:
        operation = {"op": "update", "id": task_id, "data": {"recurrence": rule}}
    return await user.post("/api/me/tasks/batch", json={"operations": [operation]})


WAYS_IN = ["post", "patch", "put", "batch-create", "batch-update"]


@pytest.mark.parametrize("how", WAYS_IN)
@pytest.mark.parametrize("rule", UNEXPANDABLE)
async def test_rules_dateutil_cannot_expand_are_422(alice: User, rule: str, how: str) -> None:
    task = await create(alice, due_date=day(1))
    response = await _write(alice, how, rule, task["id"])
    assert_problem(response, 422, "recurrence_invalid")


# --- the grammar, generated ---------------------------------------------------------------

_WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def _numbers(low: int, high: int) -> st.SearchStrategy[str]:
    items = st.lists(st.integers(low, high), min_size=1, max_size=4)
    return items.map(lambda values: ",".join(str(v) for v in values))


_ordinal = st.one_of(st.just(""), st.integers(-60, 60).map(str), st.sampled_from(["+1", "+53"]))
_byday = st.lists(
    st.tuples(_ordinal, st.sampled_from(_WEEKDAYS)).map("".join), min_size=1, max_size=4
).map(",".join)
_until = st.tuples(st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.booleans()).map(
    lambda p: f"{p[0]:04d}{p[1]:02d}{p[2]:02d}" + ("T120000Z" if p[3] else "")
)
_PARTS: dict[str, st.SearchStrategy[str]] = {
    "INTERVAL": st.integers(-1, 5000).map(str),
    "COUNT": st.integers(-1, 1200).map(str),
    "UNTIL": _until,
    "BYDAY": _byday,
    "BYMONTHDAY": _numbers(-40, 40),
    "BYMONTH": _numbers(-1, 14),
    "BYSETPOS": _numbers(-400, 400),
    "WKST": st.sampled_from([*_WEEKDAYS, "XX"]),
}


@st.composite
def rules(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY", "yearly", "HOURLY"]))
    names = draw(st.lists(st.sampled_from(sorted(_PARTS)), unique=True, max_size=5))
    parts = [f"FREQ={freq}"] + [f"{name}={draw(_PARTS[name])}" for name in names]
    ordered: list[str] = draw(st.permutations(parts))
    return ";".join(ordered)


@settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rule=rules(), how=st.sampled_from(WAYS_IN))
async def test_no_rule_in_the_grammar_reaches_a_500(
    client: httpx.AsyncClient, rule: str, how: str
) -> None:
    user = User(client, f"rrule-{uuid.uuid4().hex[:12]}")
    task = await create(user, due_date=day(1))
    response = await _write(user, how, rule, task["id"])
    if response.status_code != 422:
        assert response.status_code in {200, 201}, response.text
        return await _complete_all(user)
    assert_problem(response, 422, "recurrence_invalid")


async def _complete_all(user: User) -> None:
    """Completing every task, the recurring one included, works: the rule expands."""
    tasks = (await user.get("/api/me/tasks")).json()
    for task in tasks:
        done = await user.patch(f"/api/me/tasks/{task['id']}/complete")
        assert done.status_code == 200, done.text
        following = done.json()["next_occurrence_id"]
        if task["recurrence"] is not None and following is not None:
            assert (await user.get(f"/api/me/tasks/{following}")).status_code == 200
