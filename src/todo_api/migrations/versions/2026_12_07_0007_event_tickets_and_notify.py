"""Live updates: single-use stream tickets, a NOTIFY per committed change, one poll for
many users.

- `event_tickets`: a ticket's row is deleted when it is spent, so it opens one stream at
  most, whichever instance minted it. Row-level security as on every user table.
- `todo_notify_change()`: an AFTER INSERT row trigger on `changes` sends the user id on
  the channel `todo_api_changes`. NOTIFY is delivered at commit (never for a rollback),
  and PostgreSQL folds identical payloads of one transaction into one.
- `todo_change_heads(users)`: each named user's `change_seq`, read under that user's own
  row-level security context, in one statement: the fallback poll of a worker asks for
  all its streams' users at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "todo_api_app"
_OWNER_CHECK = "user_id = (SELECT current_setting('app.user_id', true))"


def _schema() -> str:
    return str(op.get_bind().execute(sa.text("SELECT quote_ident(current_schema())")).scalar_one())


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "event_tickets",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "id", name=op.f("pk_event_tickets")),
    )
    op.execute(f"GRANT SELECT, INSERT, DELETE ON event_tickets TO {APP_ROLE}")
    op.execute("ALTER TABLE event_tickets ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE event_tickets FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY event_tickets_owner ON event_tickets FOR ALL "
        f"USING ({_OWNER_CHECK}) WITH CHECK ({_OWNER_CHECK})"
    )
    op.execute(
        f"""
        CREATE FUNCTION {schema}.todo_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('todo_api_changes', NEW.user_id);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER changes_notify AFTER INSERT ON changes "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.todo_notify_change()"
    )
    op.execute(
        f"""
        CREATE FUNCTION {schema}.todo_change_heads(users text[])
        RETURNS TABLE (user_id text, change_seq bigint) LANGUAGE plpgsql AS $$
        DECLARE
            wanted text;
        BEGIN
            FOREACH wanted IN ARRAY users LOOP
                PERFORM set_config('app.user_id', wanted, true);
                user_id := wanted;
                change_seq := (SELECT p.change_seq FROM profiles p WHERE p.user_id = wanted);
                RETURN NEXT;
            END LOOP;
            PERFORM set_config('app.user_id', '', true);
        END
        $$
        """
    )
    op.execute(f"GRANT EXECUTE ON FUNCTION {schema}.todo_change_heads(text[]) TO {APP_ROLE}")


def downgrade() -> None:
    schema = _schema()
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.todo_change_heads(text[])")
    op.execute("DROP TRIGGER IF EXISTS changes_notify ON changes")
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.todo_notify_change()")
    op.execute("DROP POLICY IF EXISTS event_tickets_owner ON event_tickets")
    op.execute(f"REVOKE ALL ON event_tickets FROM {APP_ROLE}")
    op.drop_table("event_tickets")
