"""The request's transaction commits before the response is sent."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import literal, select

from tests.conftest import User, make_settings
from todo_api.db.database import Database
from todo_api.errors import DatabaseUnavailable

# A deferred constraint trigger fires at COMMIT, after the handler has returned: the
# only way the client can learn about it is if the commit happens before the response.
_INSTALL = """
CREATE FUNCTION fail_on_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused at commit';
END
$$;
CREATE CONSTRAINT TRIGGER fail_on_commit AFTER INSERT OR UPDATE ON tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.title = 'fail at commit') EXECUTE FUNCTION fail_on_commit();
"""
_REMOVE = """
DROP TRIGGER IF EXISTS fail_on_commit ON tasks;
DROP FUNCTION IF EXISTS fail_on_commit();
"""


async def test_failed_commit_is_never_reported_as_success(
    alice: User, owner_conn: asyncpg.Connection
) -> None:
    await owner_conn.execute(_INSTALL)
    try:
        response = await alice.post("/api/me/tasks", json={"title": "fail at commit"})
        update_target = await alice.create_task("fine")
        patched = await alice.patch(
            f"/api/me/tasks/{update_target['id']}", json={"title": "fail at commit"}
        )
    finally:
        await owner_conn.execute(_REMOVE)

    assert response.status_code >= 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "refused at commit" not in response.text  # no database detail leaks
    assert patched.status_code >= 500
    listed = (await alice.get("/api/me/tasks")).json()
    assert [task["title"] for task in listed] == ["fine"]


async def test_a_connection_lost_inside_the_transaction_is_503_not_a_crash(
    owner_url: str,
) -> None:
    # asyncpg takes a lost connection back into the pool at once and then refuses every
    # call on it; ending the transaction must still turn the loss into a 503.
    database = Database.from_url(owner_url, make_settings(owner_url))
    await database.open()

    async def lose_the_connection() -> None:
        async with database.transaction("lost-connection-user") as session:
            session.connection.terminate()
            await session.execute(select(literal(1)))

    try:
        with pytest.raises(DatabaseUnavailable):
            await lose_the_connection()
        assert database.in_use == 0  # nothing is left checked out
        assert database.breaker.is_open  # and the loss was taken for an outage
    finally:
        await database.dispose()
