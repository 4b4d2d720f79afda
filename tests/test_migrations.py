"""Migrations: they match the models, and they go down and up again cleanly."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from todo_api.db.urls import plan_connection
from todo_api.migrations import current_revision, run_migrations


async def _diff(url: str) -> list[Any]:
    plan = plan_connection(url)
    engine = create_async_engine(plan.url, connect_args=plan.connect_args, poolclass=NullPool)

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_models_and_migrations_agree(owner_url: str) -> None:
    assert await _diff(owner_url) == []


async def test_downgrade_to_base_and_upgrade_again(owner_url: str) -> None:
    head = await current_revision(owner_url)
    assert head is not None
    await run_migrations(owner_url, "base", downgrade=True)
    assert await current_revision(owner_url) is None
    await run_migrations(owner_url)
    assert await current_revision(owner_url) == head
    assert await _diff(owner_url) == []
