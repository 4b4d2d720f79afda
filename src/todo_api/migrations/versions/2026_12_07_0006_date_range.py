"""Dates within the years 1900-2999, and time zones both Python and PostgreSQL know.

Before this revision a client could store Go's zero time (0001-01-01) or 9999-12-31 as a
due date or reminder; such a row broke every route that read it. Those values are
*repaired*, not refused: they are what clients send for "no date", a user cannot fix them
(every write to such a task failed), and refusing would block the upgrade on data nobody
can change. An out-of-range (or infinite) due date is cleared together with the task's
recurrence (a rule needs a due date); an out-of-range reminder is cleared with its
dismissal. The repaired tasks get a new version and a change in the feed (the triggers
of revision 0003), so offline clients learn of the repair. Then CHECK constraints keep
the range for good.

A profile whose time zone one side does not know, or that names no place (`localtime`,
the host's own zone, differs between the API's host and the database's; `posixrules`,
`Factory`), made every all-day write a 422 or meant different times on each side; it is
reset to `UTC`, and its all-day tasks re-sorted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import zoneinfo
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIRST_DAY = "'1900-01-01'::date"
_LAST_DAY = "'2999-12-31'::date"
_FIRST = "'1900-01-01T00:00:00+00:00'::timestamptz"
_END = "'3000-01-01T00:00:00+00:00'::timestamptz"

_TASK_CHECKS = {
    "due_date_range": f"due_date BETWEEN {_FIRST_DAY} AND {_LAST_DAY}",
    "due_at_range": f"due_at >= {_FIRST} AND due_at < {_END}",
    "remind_at_range": f"remind_at >= {_FIRST} AND remind_at < {_END}",
    "due_sort_at_finite": "isfinite(due_sort_at)",
}


#: The tables the repairs write (the change-feed triggers write `changes` and `profiles`).
_REPAIRED = ("tasks", "profiles", "changes")


def upgrade() -> None:
    bind = op.get_bind()
    # Row-level security is off for migrations, so a statement it would filter fails
    # instead of touching a subset. The repairs must see every user's rows: as the owner,
    # they may once the tables stop forcing the policies on their owner, for this
    # transaction only.
    for table in _REPAIRED:
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    due_ok = " AND ".join(
        f"coalesce({_TASK_CHECKS[name]}, true)"
        for name in ("due_date_range", "due_at_range", "due_sort_at_finite")
    )
    op.execute(
        "UPDATE tasks SET due_date = NULL, due_at = NULL, due_sort_at = NULL,"
        f" recurrence = NULL, updated_at = now() WHERE NOT ({due_ok})"
    )
    op.execute(
        "UPDATE tasks SET remind_at = NULL, reminder_dismissed_at = NULL, updated_at = now()"
        f" WHERE NOT coalesce({_TASK_CHECKS['remind_at_range']}, true)"
    )
    for name, condition in _TASK_CHECKS.items():
        op.create_check_constraint(op.f(f"ck_tasks_{name}"), "tasks", condition)

    known = set(bind.execute(sa.text("SELECT name FROM pg_timezone_names")).scalars())
    known &= zoneinfo.available_timezones()
    known -= {"localtime", "posixrules", "Factory"}  # the host's zone; placeholders
    stored = set(bind.execute(sa.text("SELECT DISTINCT timezone FROM profiles")).scalars())
    unknown = sorted(stored - known)
    if unknown:
        zones: sa.BindParameter[list[str]] = sa.bindparam("zones", unknown, expanding=True)
        bind.execute(
            sa.text(
                "UPDATE tasks SET due_sort_at = timezone('UTC', due_date::timestamp)"
                " WHERE due_date IS NOT NULL AND user_id IN"
                " (SELECT user_id FROM profiles WHERE timezone IN :zones)"
            ).bindparams(zones)
        )
        bind.execute(
            sa.text(
                "UPDATE profiles SET timezone = 'UTC', updated_at = now() WHERE timezone IN :zones"
            ).bindparams(zones)
        )
    for table in _REPAIRED:
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def downgrade() -> None:
    # The repairs are not undone: the old values broke every route that read them.
    for name in reversed(_TASK_CHECKS):
        op.drop_constraint(op.f(f"ck_tasks_{name}"), "tasks", type_="check")
