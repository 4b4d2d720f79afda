"""Versions on tasks, lists and tags; stored idempotency keys; the per-user change feed.

- `version` (tasks, lists, tags) is raised by a BEFORE UPDATE row trigger, so every
  write path (services, foreign-key actions such as `SET NULL`, re-spacing) bumps it.
- `changes` is appended by statement-level AFTER triggers with transition tables on the
  same three tables: one statement, however many rows, costs one profile UPDATE and one
  INSERT, in the writing transaction itself (cascades included: they fire the triggers
  of the rows they delete or update).
- `profiles.change_seq` hands out the feed's sequence numbers. The trigger takes it with
  `UPDATE profiles ... RETURNING`, so the profile row stays locked until the writing
  transaction ends: two transactions of one user get their numbers in commit order, and
  a reader can never see seq N+1 committed while N is still to come.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "todo_api_app"
NEW_USER_TABLES = ("changes", "idempotency_keys")
_OWNER_CHECK = "user_id = (SELECT current_setting('app.user_id', true))"
VERSIONED = {"tasks": "task", "lists": "list", "tags": "tag"}

# A service may name the reason of the changes its next statements make (for example
# `list_deleted` for the tasks deleted with their list) in the transaction-local setting
# `app.change_reason`; otherwise the trigger's default applies.
_REASON = "nullif(current_setting('app.change_reason', true), '')"
_REASONS = {
    ("tasks", "INSERT"): (
        "CASE WHEN r.previous_occurrence_id IS NOT NULL THEN 'recurrence' ELSE 'created' END"
    ),
    # Subtasks deleted by the cascade from their parent are in the same transition table
    # as the parent (one AFTER STATEMENT run per table and statement, cascades included).
    ("tasks", "DELETE"): (
        f"coalesce({_REASON}, CASE WHEN r.parent_id IN (SELECT d.id FROM changed_rows AS d) "
        "THEN 'parent_deleted' ELSE 'deleted' END)"
    ),
}
_OPS = {"INSERT": ("NEW", "upsert"), "UPDATE": ("NEW", "upsert"), "DELETE": ("OLD", "delete")}


def _default_reason(event: str) -> str:
    word = {"INSERT": "created", "UPDATE": "updated", "DELETE": "deleted"}[event]
    return f"coalesce({_REASON}, '{word}')"


def _record_function(schema: str, table: str, event: str) -> str:
    kind = VERSIONED[table]
    _, feed_op = _OPS[event]
    reason = _REASONS.get((table, event), _default_reason(event))
    before = ""
    if (table, event) == ("tasks", "DELETE"):
        # A task's `next_occurrence_id` is derived from its successor: deleting the
        # successor changes the predecessor's representation, so it gets a new version
        # (and, through the UPDATE trigger, its own change).
        before = f"""
            UPDATE {schema}.tasks AS t SET version = t.version
            FROM changed_rows AS d
            WHERE t.user_id = d.user_id AND t.id = d.previous_occurrence_id;
        """
    return f"""
        CREATE FUNCTION {schema}.todo_changes_{table}_{event.lower()}() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            {before}
            WITH affected AS (
                SELECT r.user_id, r.id, r.version, {reason} AS reason FROM changed_rows AS r
            ),
            counts AS (SELECT user_id, count(*) AS n FROM affected GROUP BY user_id),
            numbered AS (
                UPDATE {schema}.profiles AS p SET change_seq = p.change_seq + c.n
                FROM counts AS c WHERE p.user_id = c.user_id
                RETURNING p.user_id, p.change_seq - c.n AS base
            )
            INSERT INTO {schema}.changes
                (user_id, seq, kind, object_id, op, reason, version, changed_at)
            SELECT a.user_id,
                   n.base + row_number() OVER (PARTITION BY a.user_id ORDER BY a.id),
                   '{kind}', a.id, '{feed_op}', a.reason, a.version, clock_timestamp()
            FROM affected AS a JOIN numbered AS n USING (user_id);
            RETURN NULL;
        END
        $$
    """


def upgrade() -> None:
    schema = _schema()
    op.add_column(
        "profiles",
        sa.Column("change_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    for table in VERSIONED:
        op.add_column(
            table, sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )

    op.create_table(
        "changes",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("kind IN ('task', 'list', 'tag')", name=op.f("ck_changes_kind_value")),
        sa.CheckConstraint("op IN ('upsert', 'delete')", name=op.f("ck_changes_op_value")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["profiles.user_id"],
            name=op.f("fk_changes_user_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "seq", name=op.f("pk_changes")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.SmallInteger(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "char_length(key) BETWEEN 1 AND 255", name=op.f("ck_idempotency_keys_key_length")
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        "ix_idempotency_keys_user_id_expires_at", "idempotency_keys", ["user_id", "expires_at"]
    )

    op.execute(
        f"""
        CREATE FUNCTION {schema}.todo_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.version := OLD.version + 1;
            RETURN NEW;
        END
        $$
        """
    )
    for table in VERSIONED:
        op.execute(
            f"CREATE TRIGGER {table}_version BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {schema}.todo_bump_version()"
        )
        for event, (transition, _) in _OPS.items():
            op.execute(_record_function(schema, table, event))
            op.execute(
                f"CREATE TRIGGER {table}_changes_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {transition} TABLE AS changed_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION "
                f"{schema}.todo_changes_{table}_{event.lower()}()"
            )

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
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_version ON {table}")
        for event in _OPS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_changes_{event.lower()} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {schema}.todo_changes_{table}_{event.lower()}()")
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.todo_bump_version()")
    op.drop_index("ix_idempotency_keys_user_id_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("changes")
    for table in reversed(VERSIONED):
        op.drop_column(table, "version")
    op.drop_column("profiles", "change_seq")


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one())
