"""A text search's transaction plans its statements for their values: with asyncpg's
prepared statements on a direct connection, PostgreSQL would otherwise settle on a
generic plan that reads all of the caller's tasks (`Database.transaction`)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from tests.conftest import User
from todo_api.db.database import Database

_MODE = text("SELECT current_setting('plan_cache_mode')")


async def test_custom_plans_last_for_the_transaction_only(app: FastAPI, alice: User) -> None:
    database: Database = app.state.database
    async with database.transaction(alice.id, custom_plans=True) as session:
        assert (await session.execute(_MODE)).scalar() == "force_custom_plan"
        # The same single context statement also set the caller and the role.
        user = await session.execute(text("SELECT current_setting('app.user_id')"))
        assert user.scalar() == alice.id
    for _ in range(3):  # the pooled connections that ran it are back to the default
        async with database.transaction(alice.id) as session:
            assert (await session.execute(_MODE)).scalar() == "auto"


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """`custom_plans` of each request transaction opened through `transaction`."""
    seen: list[bool] = []
    original = Database.transaction

    def spy(self: Database, user_id: str, *, custom_plans: bool = False) -> Any:
        seen.append(custom_plans)
        return original(self, user_id, custom_plans=custom_plans)

    monkeypatch.setattr(Database, "transaction", spy)
    return seen


async def test_only_searches_ask_for_custom_plans(alice: User, planned: list[bool]) -> None:
    await alice.create_task("Buy milk")
    planned.clear()
    found = await alice.get("/api/me/tasks", params={"q": "milk"})
    assert [t["title"] for t in found.json()] == ["Buy milk"]
    filtered = await alice.get("/api/me/tasks", params={"tag": "home"})
    assert filtered.status_code == 200
    assert planned == [True, False]
