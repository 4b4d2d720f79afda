"""Alembic migrations, run in-process on an async engine (`todo-api migrate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from todo_api.db.urls import plan_connection

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """An Alembic configuration that needs no `alembic.ini` on disk."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


async def run_migrations(url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the database at `url` to `revision`, as that URL's role."""
    plan = plan_connection(url)
    engine = create_async_engine(plan.url, connect_args=plan.connect_args, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run, revision, downgrade)
    finally:
        await engine.dispose()


def _run(connection: Connection, revision: str, downgrade: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def current_revision(url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    plan = plan_connection(url)
    engine = create_async_engine(plan.url, connect_args=plan.connect_args, poolclass=NullPool)

    def _read(connection: Connection) -> Any:
        return MigrationContext.configure(connection).get_current_revision()

    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(_read)
    finally:
        await engine.dispose()
    return str(revision) if revision else None
