"""The full task model: lists, tags, subtasks, due dates, recurrence, reminders, positions,
search indexes and quota counters.

Needs PostgreSQL >= 15 (`UNIQUE NULLS NOT DISTINCT`, `ON DELETE SET NULL (column)`); the
extensions pg_trgm and btree_gin are "trusted", so the database owner creates them
without superuser rights.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "todo_api_app"
NEW_USER_TABLES = ("lists", "tags", "task_tags")
_OWNER_CHECK = "user_id = (SELECT current_setting('app.user_id', true))"
_POSITION_DEFAULT = "('s' || lpad(nextval('tasks_position_seq')::text, 19, '0'))"

#: table -> the profile counter its statement-level triggers keep exact.
COUNTERS = {"tasks": "task_count", "lists": "list_count", "tags": "tag_count"}

_TASK_CHECKS = {
    "priority_range": "priority BETWEEN 0 AND 3",
    "due_exclusive": "due_date IS NULL OR due_at IS NULL",
    "due_sort_at_set": "(due_sort_at IS NULL) = (due_date IS NULL AND due_at IS NULL)",
    "recurrence_due": "recurrence IS NULL OR due_sort_at IS NOT NULL",
    "repeat_from_value": "repeat_from IN ('due', 'completion')",
    "parent_not_self": "parent_id <> id",
}

_TASK_INDEXES = {
    "ix_tasks_user_id_completed_updated_at_id": ["user_id", "completed", "updated_at", "id"],
    "ix_tasks_user_id_completed_priority_id": ["user_id", "completed", "priority", "id"],
    "ix_tasks_user_id_due_sort_at_id": ["user_id", "due_sort_at", "id"],
    "ix_tasks_user_id_completed_due_sort_at_id": ["user_id", "completed", "due_sort_at", "id"],
    "ix_tasks_user_id_parent_id_position": ["user_id", "parent_id", "position"],
}


def upgrade() -> None:
    schema = _schema()
    # Trusted extensions (PostgreSQL >= 13): the database owner may create them.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute("CREATE SEQUENCE tasks_position_seq")

    op.create_table(
        "lists",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "char_length(name) BETWEEN 1 AND 100", name=op.f("ck_lists_name_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["profiles.user_id"],
            name=op.f("fk_lists_user_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
        sa.UniqueConstraint("user_id", "id", name=op.f("uq_lists_user_id_id")),
    )
    op.create_index("ix_lists_user_id_created_at_id", "lists", ["user_id", "created_at", "id"])
    op.create_table(
        "tags",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("name_key", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 50", name=op.f("ck_tags_name_length")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["profiles.user_id"],
            name=op.f("fk_tags_user_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("user_id", "id", name=op.f("uq_tags_user_id_id")),
        sa.UniqueConstraint("user_id", "name_key", name=op.f("uq_tags_user_id_name_key")),
    )
    op.create_table(
        "task_tags",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("tag_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id", "tag_id"],
            ["tags.user_id", "tags.id"],
            name=op.f("fk_task_tags_user_id_tag_id_tags"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id", "task_id"],
            ["tasks.user_id", "tasks.id"],
            name=op.f("fk_task_tags_user_id_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "task_id", "tag_id", name=op.f("pk_task_tags")),
    )
    op.create_index(
        "ix_task_tags_user_id_tag_id_task_id", "task_tags", ["user_id", "tag_id", "task_id"]
    )

    for counter in COUNTERS.values():
        op.add_column(
            "profiles",
            sa.Column(counter, sa.Integer(), server_default=sa.text("0"), nullable=False),
        )

    op.add_column(
        "tasks",
        sa.Column("priority", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("tasks", sa.Column("due_date", sa.Date(), nullable=True))
    op.add_column("tasks", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("due_sort_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tasks", sa.Column("recurrence", sa.String(length=500), nullable=True))
    op.add_column(
        "tasks",
        sa.Column(
            "repeat_from", sa.String(length=10), server_default=sa.text("'due'"), nullable=False
        ),
    )
    op.add_column("tasks", sa.Column("previous_occurrence_id", sa.BigInteger(), nullable=True))
    op.add_column("tasks", sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tasks", sa.Column("reminder_dismissed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("tasks", sa.Column("list_id", sa.BigInteger(), nullable=True))
    op.add_column("tasks", sa.Column("parent_id", sa.BigInteger(), nullable=True))
    op.add_column("tasks", sa.Column("position", sa.Text(collation="C"), nullable=True))
    # Data migrations run as the owner, to whom FORCE ROW LEVEL SECURITY applies (and
    # `row_security = off` makes a filtered statement fail): lift FORCE meanwhile.
    op.execute("ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE profiles NO FORCE ROW LEVEL SECURITY")
    # Existing tasks keep their creation order in the inbox's manual order.
    op.execute(
        f"""
        WITH ordered AS MATERIALIZED (
            SELECT id, {_POSITION_DEFAULT} AS position
            FROM (SELECT id FROM tasks ORDER BY created_at, id) AS by_age
        )
        UPDATE tasks SET position = ordered.position FROM ordered WHERE tasks.id = ordered.id
        """
    )
    op.alter_column("tasks", "position", nullable=False, server_default=sa.text(_POSITION_DEFAULT))
    for name, condition in _TASK_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_tasks_{name}"), "tasks", condition)

    for name, columns in _TASK_INDEXES.items():
        op.create_index(name, "tasks", columns)
    op.create_index(
        "ix_tasks_due_reminders",
        "tasks",
        ["user_id", "remind_at", "id"],
        postgresql_where=sa.text(
            "remind_at IS NOT NULL AND reminder_dismissed_at IS NULL AND NOT completed"
        ),
    )
    op.create_index(
        "ix_tasks_search",
        "tasks",
        ["user_id", "title", "description"],
        postgresql_using="gin",
        postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
    )
    op.create_unique_constraint(
        op.f("uq_tasks_user_id_list_id_position"),
        "tasks",
        ["user_id", "list_id", "position"],
        postgresql_nulls_not_distinct=True,
    )
    op.create_unique_constraint(
        op.f("uq_tasks_user_id_previous_occurrence_id"),
        "tasks",
        ["user_id", "previous_occurrence_id"],
    )
    op.create_foreign_key(
        op.f("fk_tasks_user_id_list_id_lists"),
        "tasks",
        "lists",
        ["user_id", "list_id"],
        ["user_id", "id"],
    )
    op.create_foreign_key(
        op.f("fk_tasks_user_id_parent_id_tasks"),
        "tasks",
        "tasks",
        ["user_id", "parent_id"],
        ["user_id", "id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_tasks_user_id_previous_occurrence_id_tasks"),
        "tasks",
        "tasks",
        ["user_id", "previous_occurrence_id"],
        ["user_id", "id"],
        ondelete="SET NULL (previous_occurrence_id)",
    )

    # Quota counters. Statement-level triggers with transition tables see every path
    # that adds or removes rows (cascades from a deleted parent task or list included)
    # and cost one UPDATE of the profile row per statement, not per row.
    for table, counter in COUNTERS.items():
        function = f"{schema}.todo_count_{table}"
        op.execute(
            f"""
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE {schema}.profiles AS p
                SET {counter} = p.{counter}
                    + CASE WHEN TG_OP = 'INSERT' THEN c.n ELSE -c.n END
                FROM (SELECT user_id, count(*) AS n FROM changed_rows GROUP BY user_id) AS c
                WHERE p.user_id = c.user_id;
                RETURN NULL;
            END
            $$
            """
        )
        for event, transition in (("INSERT", "NEW"), ("DELETE", "OLD")):
            op.execute(
                f"CREATE TRIGGER {table}_count_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {transition} TABLE AS changed_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
        op.execute(
            f"UPDATE profiles SET {counter} = "
            f"(SELECT count(*) FROM {table} WHERE {table}.user_id = profiles.user_id)"
        )

    op.execute("ALTER TABLE profiles FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tasks FORCE ROW LEVEL SECURITY")

    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE tasks_position_seq TO {APP_ROLE}")
    for table in NEW_USER_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_owner ON {table} FOR ALL "
            f"USING ({_OWNER_CHECK}) WITH CHECK ({_OWNER_CHECK})"
        )


def downgrade() -> None:
    schema = _schema()
    for table in reversed(NEW_USER_TABLES):
        op.execute(f"DROP POLICY IF EXISTS {table}_owner ON {table}")
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    for table in COUNTERS:
        for event in ("insert", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{event} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.todo_count_{table}()")

    op.drop_constraint(
        op.f("fk_tasks_user_id_previous_occurrence_id_tasks"), "tasks", type_="foreignkey"
    )
    op.drop_constraint(op.f("fk_tasks_user_id_parent_id_tasks"), "tasks", type_="foreignkey")
    op.drop_constraint(op.f("fk_tasks_user_id_list_id_lists"), "tasks", type_="foreignkey")
    op.drop_constraint(op.f("uq_tasks_user_id_previous_occurrence_id"), "tasks", type_="unique")
    op.drop_constraint(op.f("uq_tasks_user_id_list_id_position"), "tasks", type_="unique")
    op.drop_index("ix_tasks_search", table_name="tasks")
    op.drop_index("ix_tasks_due_reminders", table_name="tasks")
    for name in reversed(_TASK_INDEXES):
        op.drop_index(name, table_name="tasks")
    for name in reversed(_TASK_CHECKS):
        op.drop_constraint(op.f(f"ck_tasks_{name}"), "tasks", type_="check")
    for column in (
        "position",
        "parent_id",
        "list_id",
        "reminder_dismissed_at",
        "remind_at",
        "previous_occurrence_id",
        "repeat_from",
        "recurrence",
        "due_sort_at",
        "due_at",
        "due_date",
        "priority",
    ):
        op.drop_column("tasks", column)
    for counter in reversed(COUNTERS.values()):
        op.drop_column("profiles", counter)
    op.drop_index("ix_task_tags_user_id_tag_id_task_id", table_name="task_tags")
    op.drop_table("task_tags")
    op.drop_table("tags")
    op.drop_index("ix_lists_user_id_created_at_id", table_name="lists")
    op.drop_table("lists")
    op.execute("DROP SEQUENCE tasks_position_seq")
    # The extensions stay, like the role: other objects in the database may use them.


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one())
