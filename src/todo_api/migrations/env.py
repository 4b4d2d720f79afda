"""Alembic environment: always handed an open connection by `todo_api.migrations`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import todo_api.models  # noqa: F401  (registers the tables on the metadata)

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `todo-api migrate`, which supplies the connection")

# A data migration must fail loudly rather than silently touch the subset of rows
# that row-level security would let it see.
connection.execute(text("SET LOCAL row_security = off"))
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    compare_type=True,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
