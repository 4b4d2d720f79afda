"""Stored idempotent responses may be compressed: `idempotency_keys.response_compressed`.

Bodies stored before this revision are not compressed, which the default says.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_keys",
        sa.Column(
            "response_compressed", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )


def downgrade() -> None:
    # The older code cannot replay compressed bodies. Stored responses are a 24-hour
    # retry cache: forgetting all of them is safe (TRUNCATE, which row-level security
    # does not filter, unlike a DELETE).
    op.execute("TRUNCATE idempotency_keys")
    op.drop_column("idempotency_keys", "response_compressed")
