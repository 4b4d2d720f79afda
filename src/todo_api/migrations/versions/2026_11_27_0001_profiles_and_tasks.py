"""Profiles and tasks, the application role, and row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "todo_api_app"
USER_TABLES = ("profiles", "tasks")

# Policies compare against the request's `app.user_id`. The sub-select makes PostgreSQL
# evaluate the setting once per statement (an InitPlan) instead of once per row; an unset
# or empty setting matches nothing, so a forgotten context fails closed.
_OWNER_CHECK = "user_id = (SELECT current_setting('app.user_id', true))"


def upgrade() -> None:
    # The role is cluster-wide; another database may have created it already.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
            END IF;
            -- The migrating role (the owner) must be able to drop to the application
            -- role for each request when it is also the role the service connects as.
            IF current_setting('server_version_num')::int >= 160000 THEN
                IF NOT pg_has_role(current_user, '{APP_ROLE}', 'SET') THEN
                    EXECUTE 'GRANT {APP_ROLE} TO CURRENT_USER WITH INHERIT FALSE, SET TRUE';
                END IF;
            ELSIF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
                EXECUTE 'GRANT {APP_ROLE} TO CURRENT_USER';
            END IF;
        END
        $$;
        """
    )

    op.create_table(
        "profiles",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=True),
        sa.Column(
            "timezone", sa.String(length=64), server_default=sa.text("'UTC'"), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "char_length(user_id) BETWEEN 1 AND 255", name=op.f("ck_profiles_user_id_length")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_profiles")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "char_length(title) BETWEEN 1 AND 200", name=op.f("ck_tasks_title_length")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["profiles.user_id"],
            name=op.f("fk_tasks_user_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("user_id", "id", name=op.f("uq_tasks_user_id_id")),
    )
    op.create_index("ix_tasks_user_id_created_at_id", "tasks", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_tasks_user_id_completed_created_at_id",
        "tasks",
        ["user_id", "completed", "created_at", "id"],
    )
    op.create_index("ix_tasks_user_id_title_id", "tasks", ["user_id", "title", "id"])
    op.create_index(
        "ix_tasks_user_id_completed_title_id", "tasks", ["user_id", "completed", "title", "id"]
    )

    op.execute(f"GRANT USAGE ON SCHEMA {_schema()} TO {APP_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema()} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema()} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    )
    for table in USER_TABLES:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_owner ON {table} FOR ALL "
            f"USING ({_OWNER_CHECK}) WITH CHECK ({_OWNER_CHECK})"
        )


def downgrade() -> None:
    for table in reversed(USER_TABLES):
        op.execute(f"DROP POLICY IF EXISTS {table}_owner ON {table}")
        op.execute(f"REVOKE ALL ON {table} FROM {APP_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema()} "
        f"REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema()} "
        f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}"
    )
    op.execute(f"REVOKE USAGE ON SCHEMA {_schema()} FROM {APP_ROLE}")
    op.drop_index("ix_tasks_user_id_completed_title_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_title_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_completed_created_at_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_created_at_id", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("profiles")
    # The role itself stays: it is shared by every database in the cluster.


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one())
