"""Profile rules: reads never write; the first write of a user creates the row."""

from __future__ import annotations

from sqlalchemy import DateTime, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from todo_api.auth.principal import Principal
from todo_api.db.database import Session
from todo_api.db.statements import Row
from todo_api.errors import Unprocessable
from todo_api.models import idempotency_keys_table as ik
from todo_api.models import lists_table as lst
from todo_api.models import profiles_table as p
from todo_api.models import tags_table as tg
from todo_api.models import tasks_table as t
from todo_api.schemas.profile import ProfilePublic, ProfileUpdate


async def ensure_profile(session: Session, user_id: str) -> None:
    """Create the caller's profile row if it is missing (idempotent, race-free)."""
    await session.execute(
        insert(p).values(user_id=user_id).on_conflict_do_nothing(index_elements=[p.c.user_id])
    )


def _public(principal: Principal, row: Row | None) -> ProfilePublic:
    return ProfilePublic(
        user_id=principal.user_id,
        email=principal.email,
        name=principal.name,
        display_name=row["display_name"] if row is not None else None,
        timezone=row["timezone"] if row is not None else "UTC",
        created_at=row["created_at"] if row is not None else None,
        updated_at=row["updated_at"] if row is not None else None,
    )


async def get_profile(session: Session, principal: Principal) -> ProfilePublic:
    """The stored profile, or the defaults when the user has never written anything."""
    row = (await session.execute(select(p).where(p.c.user_id == principal.user_id))).first()
    return _public(principal, row)


async def update_profile(
    session: Session, principal: Principal, data: ProfileUpdate, time_zones: frozenset[str]
) -> ProfilePublic:
    """Upsert the fields the client sent, in one statement (plus one re-sorting the
    all-day tasks when the time zone is sent). `time_zones`: the names the database
    server knows too; any other is a 422 `timezone_unsupported`."""
    values = data.model_dump(exclude_unset=True)
    if "timezone" in values and values["timezone"] is None:
        values["timezone"] = "UTC"  # null resets the zone to its default
    if "timezone" in values and values["timezone"] not in time_zones:
        raise Unprocessable(
            "The time zone is not one the database server knows; use an IANA name "
            "such as 'Europe/Paris'.",
            code="timezone_unsupported",
            extra={
                "errors": [
                    {
                        "loc": ["body", "timezone"],
                        "msg": "unknown to the database server",
                        "type": "timezone_unsupported",
                    }
                ]
            },
        )
    if "timezone" in values:
        # All-day tasks sort (and fall overdue) from the start of their day in the zone.
        # Before the profile upsert: task rows, then the profile row, is the lock order
        # of every other write.
        await session.execute(
            update(t)
            .where(t.c.user_id == principal.user_id, t.c.due_date.is_not(None))
            .values(due_sort_at=func.timezone(values["timezone"], cast(t.c.due_date, DateTime())))
        )
    insert_stmt = insert(p).values(user_id=principal.user_id, **values)
    upsert = insert_stmt.on_conflict_do_update(
        index_elements=[p.c.user_id],
        set_={**{k: insert_stmt.excluded[k] for k in values}, "updated_at": func.now()},
    ).returning(p)
    row = (await session.execute(upsert)).first()
    return _public(principal, row)


async def erase_user(session: Session, user_id: str) -> None:
    """Delete everything stored for the user. The next request starts a fresh account.

    The change feed goes with the profile (foreign key cascade), so nothing about the
    erased objects survives; the profile's creation time is the feeds' epoch, so a
    cursor from before the erase gets 410 `cursor_expired` and the client resyncs to
    the empty account. Stored idempotency keys (and their responses) go too."""
    # Children first: tasks (their tags links and subtasks go with them), then tags and
    # lists, then the profile, whose counters the deletes above keep updating.
    for table in (t, tg, lst, ik, p):
        await session.execute(delete(table).where(table.c.user_id == user_id))
