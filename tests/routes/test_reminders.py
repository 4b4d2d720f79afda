"""Reminders: what a frontend polls for, dismissing, re-arming, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import User
from tests.dates import at, moment
from tests.routes.support import assert_problem, create, frozen_now, ids


async def due(user: User, spelling: str = "me", **params: Any) -> list[dict[str, Any]]:
    prefix = {"canonical": f"/api/{user.id}", "me": "/api/me", "alias": "/api"}[spelling]
    response = await user.get(f"{prefix}/reminders", params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


@pytest.mark.parametrize("spelling", ["canonical", "me", "alias"])
async def test_due_reminders_are_the_open_tasks_whose_time_has_come(
    alice: User, spelling: str
) -> None:
    early = await create(alice, remind_at=at(1, "08:00"))
    later = await create(alice, remind_at=at(1, "09:00", "+01:00"))  # 08:00Z too
    await create(alice, remind_at=at(1, "08:00:01"))
    await create(alice, remind_at=at(1, "07:00"), completed=True)
    await create(alice)
    found = await due(alice, spelling, until=at(1, "08:00"))
    assert ids(found) == [early["id"], later["id"]]  # soonest first, then by id


async def test_until_defaults_to_now(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    task = await create(alice, remind_at=at(1, "08:00"))
    with frozen_now(monkeypatch, moment(1, 7, 59)):
        assert await due(alice) == []
    with frozen_now(monkeypatch, moment(1, 8)):
        assert ids(await due(alice)) == [task["id"]]


async def test_dismissed_reminders_stay_quiet_until_set_again(alice: User) -> None:
    task = await create(alice, remind_at=at(1, "08:00"))
    response = await alice.post(f"/api/me/reminders/{task['id']}/dismiss")
    assert response.status_code == 200, response.text
    assert response.json()["reminder_dismissed_at"] is not None
    assert response.json()["remind_at"] == at(1, "08:00")
    assert await due(alice, until=at(365)) == []
    rearmed = await alice.patch(f"/api/me/tasks/{task['id']}", json={"remind_at": at(2, "08:00")})
    assert rearmed.json()["reminder_dismissed_at"] is None
    assert ids(await due(alice, until=at(365))) == [task["id"]]


async def test_limit_bounds_the_answer(alice: User) -> None:
    for _ in range(3):
        await create(alice, remind_at=at(1, "08:00"))
    assert len(await due(alice, until=at(2), limit=2)) == 2


@pytest.mark.parametrize(
    "params", [{"until": "2026-12-01T08:00:00"}, {"until": "soon"}, {"limit": 0}, {"limit": 201}]
)
async def test_invalid_reminder_queries_are_422(alice: User, params: dict[str, Any]) -> None:
    response = await alice.get("/api/me/reminders", params=params)
    assert_problem(response, 422, "validation_failed")


async def test_another_users_reminders_never_show(alice: User, bob: User) -> None:
    await create(alice, remind_at=at(1, "08:00"))
    assert await due(bob, until=at(365)) == []
