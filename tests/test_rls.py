"""Isolation below the service layer: PostgreSQL itself refuses cross-user access."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import User
from todo_api.db.database import APP_ROLE


async def test_every_user_table_has_forced_rls_and_a_policy(owner_conn: asyncpg.Connection) -> None:
    rows = await owner_conn.fetch(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
        """
    )
    assert {row["relname"] for row in rows} >= {"profiles", "tasks"}
    for row in rows:
        assert row["relrowsecurity"], f"{row['relname']}: RLS not enabled"
        assert row["relforcerowsecurity"], f"{row['relname']}: RLS not forced"
        assert row["policies"] >= 1, f"{row['relname']}: no policy"


async def test_app_role_cannot_bypass_rls(owner_conn: asyncpg.Connection) -> None:
    row = await owner_conn.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", APP_ROLE
    )
    assert row is not None
    assert not row["rolsuper"] and not row["rolbypassrls"]


async def _as_user(conn: asyncpg.Connection, user_id: str | None) -> None:
    await conn.execute("BEGIN")
    await conn.execute(f"SET LOCAL ROLE {APP_ROLE}")
    if user_id is not None:
        await conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)


@pytest.fixture
async def alices_task(alice: User) -> dict[str, object]:
    return await alice.create_task("alice's secret")


async def test_other_context_reads_nothing_even_without_a_filter(
    owner_conn: asyncpg.Connection, alices_task: dict[str, object], bob: User
) -> None:
    await _as_user(owner_conn, bob.id)
    try:
        seen = await owner_conn.fetch("SELECT id FROM tasks WHERE id = $1", alices_task["id"])
        profiles = await owner_conn.fetch(
            "SELECT user_id FROM profiles WHERE user_id <> $1", bob.id
        )
    finally:
        await owner_conn.execute("ROLLBACK")
    assert seen == []
    assert profiles == []


async def test_other_context_cannot_update_or_delete(
    owner_conn: asyncpg.Connection, alices_task: dict[str, object], alice: User, bob: User
) -> None:
    await _as_user(owner_conn, bob.id)
    try:
        updated = await owner_conn.execute(
            "UPDATE tasks SET title = 'pwned' WHERE id = $1", alices_task["id"]
        )
        deleted = await owner_conn.execute("DELETE FROM tasks WHERE id = $1", alices_task["id"])
    finally:
        await owner_conn.execute("ROLLBACK")
    assert updated == "UPDATE 0"
    assert deleted == "DELETE 0"
    after = (await alice.get(f"/api/me/tasks/{alices_task['id']}")).json()
    assert after == alices_task


async def test_other_context_cannot_insert_rows_for_someone_else(
    owner_conn: asyncpg.Connection, alice: User, bob: User
) -> None:
    await alice.create_task("makes alice's profile exist")
    await _as_user(owner_conn, bob.id)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner_conn.execute(
                "INSERT INTO tasks (user_id, title) VALUES ($1, 'planted')", alice.id
            )
    finally:
        await owner_conn.execute("ROLLBACK")


@pytest.mark.parametrize("context", [None, ""], ids=["unset", "empty"])
async def test_no_user_context_sees_nothing(
    owner_conn: asyncpg.Connection, alices_task: dict[str, object], context: str | None
) -> None:
    await _as_user(owner_conn, context)
    try:
        count = await owner_conn.fetchval("SELECT count(*) FROM tasks")
        profiles = await owner_conn.fetchval("SELECT count(*) FROM profiles")
    finally:
        await owner_conn.execute("ROLLBACK")
    assert count == 0
    assert profiles == 0


async def test_requests_run_with_isolation_enforced(client: object, app: object) -> None:
    database = app.state.database  # type: ignore[attr-defined]
    assert database.isolation_enforced is True
