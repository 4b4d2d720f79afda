"""Indexes for the manual order across lists: `sort=position` without `list_id`.

`uq_tasks_user_id_list_id_position` orders one list's tasks; across lists a first page
had to read and sort every (open) task of the user, which for a user with 50,000 tasks
cost a hundred times an ordinary user's page. One index per `status` shape, as for the
other sorts: all tasks, and open or done ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TASK_INDEXES = {
    "ix_tasks_user_id_position_id": ["user_id", "position", "id"],
    "ix_tasks_user_id_completed_position_id": ["user_id", "completed", "position", "id"],
}


def upgrade() -> None:
    for name, columns in _TASK_INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in reversed(_TASK_INDEXES):
        op.drop_index(name, table_name="tasks")
