"""Migration 0006 repairs what earlier versions let in: dates outside 1900-2999 (and
infinities) are cleared, zones that are no place are reset to UTC; afterwards every
route reads those users' data, and the repairs show in the change feed."""

from __future__ import annotations

import asyncpg

from tests.conftest import User
from tests.routes.support import create
from todo_api.migrations import current_revision, run_migrations


async def _as(conn: asyncpg.Connection, user_id: str, sql: str, *args: object) -> int:
    async with conn.transaction():
        await conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        task_id: int = await conn.fetchval(sql, *args)
    return task_id


async def test_out_of_range_rows_and_placeless_zones_are_repaired(
    owner_url: str, owner_conn: asyncpg.Connection, alice: User, bob: User
) -> None:
    head = await current_revision(owner_url)
    await create(alice)  # her profile row
    kept = await create(bob, due_date="2027-03-04", remind_at="2027-03-04T08:00:00Z")
    await run_migrations(owner_url, "0005", downgrade=True)
    try:
        insert = (
            "INSERT INTO tasks (user_id, title, due_date, due_at, due_sort_at, recurrence,"
            " remind_at) VALUES ($1, 'old', {}) RETURNING id"
        )
        zero = await _as(
            owner_conn,
            alice.id,
            insert.format("NULL, '0001-01-01T00:00:00Z', '0001-01-01T00:00:00Z', NULL, NULL"),
            alice.id,
        )
        never = await _as(
            owner_conn,
            alice.id,
            insert.format("'9999-12-31', NULL, '9999-12-31T00:00:00Z', 'FREQ=DAILY', 'infinity'"),
            alice.id,
        )
        since = (await alice.get("/api/me/changes")).json()["next"]
        await _as(
            owner_conn,
            alice.id,
            "UPDATE profiles SET timezone = 'localtime' WHERE user_id = $1 RETURNING 1",
            alice.id,
        )
    finally:
        await run_migrations(owner_url)
    assert await current_revision(owner_url) == head

    for task_id in (zero, never):
        response = await alice.get(f"/api/me/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task = response.json()
        assert (task["due_date"], task["remind_at"], task["recurrence"]) == (None, None, None)
        assert task["version"] > 1  # a new version, so a client's ETag no longer matches
    assert (await bob.get(f"/api/me/tasks/{kept['id']}")).json() == kept  # in range: untouched
    assert (await alice.get("/api/me")).json()["timezone"] == "UTC"
    changes = await alice.get("/api/me/changes", params={"since": since})
    assert changes.status_code == 200, changes.text
    changed = [c["id"] for c in changes.json()["changes"] if c["kind"] == "task"]
    assert {zero, never} <= set(changed)
    assert (
        await alice.post("/api/me/tasks", json={"title": "t", "due_date": "2027-01-01"})
    ).status_code == 201
