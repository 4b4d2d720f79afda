"""Table models. Request and response shapes live in `todo_api.schemas`.

Every user-owned table carries `user_id`; parent tables are `UNIQUE (user_id, id)` and
every link between two user-owned rows is a composite `(user_id, x_id)` foreign key, so a
row can never point at another user's row and a foreign-key error never reveals that
someone else's id exists.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from todo_api.date_range import EARLIEST, EARLIEST_DATE, END, LATEST_DATE

# Stable constraint names, so migrations can refer to them and autogenerate never drifts.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Positions of new (and moved-to-the-end) tasks: `s` + 19 decimal digits of this
#: sequence, a valid fractional-index key (`services/positions.py`) that sorts after
#: every key generated before it, so appending never needs to read the list.
POSITION_SEQUENCE = Sequence("tasks_position_seq", metadata=SQLModel.metadata)
POSITION_DEFAULT = text("('s' || lpad(nextval('tasks_position_seq')::text, 19, '0'))")


# SQL literals of the accepted range, for the CHECK constraints on client-set dates.
_FIRST_DAY = f"'{EARLIEST_DATE.isoformat()}'::date"
_LAST_DAY = f"'{LATEST_DATE.isoformat()}'::date"
_FIRST = f"'{EARLIEST.isoformat()}'::timestamptz"
_END = f"'{END.isoformat()}'::timestamptz"


def _now_column(name: str) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


def _counter(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default=text("0"))


def _version() -> Column[int]:
    # Raised by a BEFORE UPDATE trigger on every change (migration 0003), so no write path
    # can forget it; the ETag and `If-Match` compare it.
    return Column("version", Integer, nullable=False, server_default=text("1"))


class Profile(SQLModel, table=True):
    """A user's settings. The row appears on the user's first write; reads never create it.

    The counters are kept exact by statement-level triggers on tasks, lists and tags
    (migration 0002), so quotas are checked without counting rows.
    """

    __tablename__ = "profiles"
    __table_args__ = (
        CheckConstraint("char_length(user_id) BETWEEN 1 AND 255", name="user_id_length"),
    )

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    display_name: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    timezone: str = Field(
        default="UTC", sa_column=Column(String(64), nullable=False, server_default=text("'UTC'"))
    )
    created_at: datetime = Field(sa_column=_now_column("created_at"))
    updated_at: datetime = Field(sa_column=_now_column("updated_at"))
    task_count: int = Field(default=0, sa_column=_counter("task_count"))
    list_count: int = Field(default=0, sa_column=_counter("list_count"))
    tag_count: int = Field(default=0, sa_column=_counter("tag_count"))
    #: The last sequence number of the user's change feed (`changes.seq`). Taken under
    #: this row's lock by the change triggers, so a user's sequence numbers are handed
    #: out in commit order (see `services/changes.py`).
    change_seq: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )


class TaskList(SQLModel, table=True):
    """A list (project). A task belongs to one list or to none (the inbox)."""

    __tablename__ = "lists"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
        Index("ix_lists_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(sa_column=_now_column("created_at"))
    updated_at: datetime = Field(sa_column=_now_column("updated_at"))
    version: int = Field(default=1, sa_column=_version())


class Tag(SQLModel, table=True):
    """A tag; `name_key` (NFKC + casefold, computed by the service) makes names unique
    per user without regard to case."""

    __tablename__ = "tags"
    __table_args__ = (
        UniqueConstraint("user_id", "id"),
        UniqueConstraint("user_id", "name_key"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 50", name="name_length"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(String(50), nullable=False))
    name_key: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_now_column("created_at"))
    version: int = Field(default=1, sa_column=_version())


class TaskTag(SQLModel, table=True):
    """A task carries a tag. Both links are composite, so both rows are the same user's."""

    __tablename__ = "task_tags"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "task_id", "tag_id"),
        ForeignKeyConstraint(
            ["user_id", "task_id"], ["tasks.user_id", "tasks.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["user_id", "tag_id"], ["tags.user_id", "tags.id"], ondelete="CASCADE"
        ),
        # Tasks by tag (filters) and tag counts; the primary key serves tags by task.
        Index("ix_task_tags_user_id_tag_id_task_id", "user_id", "tag_id", "task_id"),
    )

    user_id: str = Field(sa_column=Column(Text, nullable=False))
    task_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    tag_id: int = Field(sa_column=Column(BigInteger, nullable=False))


class Task(SQLModel, table=True):
    """One task of one user."""

    __tablename__ = "tasks"
    __table_args__ = (
        # Lets other rows point at a task with a composite (user_id, task_id) key,
        # so a row can never reference another user's task.
        UniqueConstraint("user_id", "id"),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="title_length"),
        CheckConstraint("priority BETWEEN 0 AND 3", name="priority_range"),
        CheckConstraint("due_date IS NULL OR due_at IS NULL", name="due_exclusive"),
        CheckConstraint(
            "(due_sort_at IS NULL) = (due_date IS NULL AND due_at IS NULL)", name="due_sort_at_set"
        ),
        CheckConstraint("recurrence IS NULL OR due_sort_at IS NOT NULL", name="recurrence_due"),
        CheckConstraint("repeat_from IN ('due', 'completion')", name="repeat_from_value"),
        CheckConstraint("parent_id <> id", name="parent_not_self"),
        # The accepted range (`todo_api.date_range`), also for wall times the database
        # resolves in the profile's zone; it also keeps out 'infinity'.
        CheckConstraint(f"due_date BETWEEN {_FIRST_DAY} AND {_LAST_DAY}", name="due_date_range"),
        CheckConstraint(f"due_at >= {_FIRST} AND due_at < {_END}", name="due_at_range"),
        CheckConstraint(f"remind_at >= {_FIRST} AND remind_at < {_END}", name="remind_at_range"),
        # Derived from the due date (within a day of it); never 'infinity'.
        CheckConstraint("isfinite(due_sort_at)", name="due_sort_at_finite"),
        ForeignKeyConstraint(["user_id", "list_id"], ["lists.user_id", "lists.id"]),
        ForeignKeyConstraint(
            ["user_id", "parent_id"], ["tasks.user_id", "tasks.id"], ondelete="CASCADE"
        ),
        # SET NULL on one column of a composite key (PostgreSQL >= 15): deleting a past
        # occurrence keeps the current one and only forgets the link.
        ForeignKeyConstraint(
            ["user_id", "previous_occurrence_id"],
            ["tasks.user_id", "tasks.id"],
            ondelete="SET NULL (previous_occurrence_id)",
        ),
        # At most one next occurrence per task: double completion is harmless.
        UniqueConstraint("user_id", "previous_occurrence_id"),
        # Manual order: one fractional position per list (the inbox is list NULL). Also
        # the index behind `list_id=...&sort=position` and the list foreign key.
        UniqueConstraint("user_id", "list_id", "position", postgresql_nulls_not_distinct=True),
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"
        ),
        Index("ix_tasks_user_id_title_id", "user_id", "title", "id"),
        Index("ix_tasks_user_id_completed_title_id", "user_id", "completed", "title", "id"),
        Index(
            "ix_tasks_user_id_completed_updated_at_id", "user_id", "completed", "updated_at", "id"
        ),
        Index("ix_tasks_user_id_completed_priority_id", "user_id", "completed", "priority", "id"),
        # `sort=position` across lists (the unique constraint above serves one list).
        Index("ix_tasks_user_id_position_id", "user_id", "position", "id"),
        Index("ix_tasks_user_id_completed_position_id", "user_id", "completed", "position", "id"),
        Index("ix_tasks_user_id_due_sort_at_id", "user_id", "due_sort_at", "id"),
        Index(
            "ix_tasks_user_id_completed_due_sort_at_id",
            "user_id",
            "completed",
            "due_sort_at",
            "id",
        ),
        # Subtasks of a task (and the cascade when a parent is deleted).
        Index("ix_tasks_user_id_parent_id_position", "user_id", "parent_id", "position"),
        # Due reminders: only the rows a poll can return.
        Index(
            "ix_tasks_due_reminders",
            "user_id",
            "remind_at",
            "id",
            postgresql_where=text(
                "remind_at IS NOT NULL AND reminder_dismissed_at IS NULL AND NOT completed"
            ),
        ),
        # `q`: case-insensitive substring search (pg_trgm), scoped by user (btree_gin).
        # Under row-level security PostgreSQL uses only its `user_id` part: `ILIKE` is
        # not leakproof, so it may not run before the policy as an index condition.
        Index(
            "ix_tasks_search",
            "user_id",
            "title",
            "description",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops", "description": "gin_trgm_ops"},
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(), primary_key=True),
    )
    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False)
    )
    title: str = Field(sa_column=Column(String(200), nullable=False))
    description: str | None = Field(default=None, sa_column=Column(String(2000), nullable=True))
    completed: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    completed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = Field(sa_column=_now_column("created_at"))
    updated_at: datetime = Field(sa_column=_now_column("updated_at"))
    #: 0 none, 1 low, 2 medium, 3 high.
    priority: int = Field(
        default=0, sa_column=Column(SmallInteger, nullable=False, server_default=text("0"))
    )
    #: An all-day due date, or (exclusively) a due instant.
    due_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    due_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    #: `due_at`, or the start of `due_date` in the profile's time zone: the sort key.
    due_sort_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    recurrence: str | None = Field(default=None, sa_column=Column(String(500), nullable=True))
    repeat_from: str = Field(
        default="due",
        sa_column=Column(String(10), nullable=False, server_default=text("'due'")),
    )
    previous_occurrence_id: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True)
    )
    remind_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    reminder_dismissed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    list_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    parent_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    #: Fractional index, compared bytewise (`COLLATE "C"`), unique within a list.
    position: str = Field(
        sa_column=Column(Text(collation="C"), nullable=False, server_default=POSITION_DEFAULT)
    )
    version: int = Field(default=1, sa_column=_version())


class Change(SQLModel, table=True):
    """One entry of a user's change feed, appended by triggers on tasks, lists and tags.

    `seq` is per user and dense; the feed returns the current object for an upsert, so
    only the identity of the changed object is stored here. Deleted with the profile.
    """

    __tablename__ = "changes"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "seq"),
        CheckConstraint("kind IN ('task', 'list', 'tag')", name="kind_value"),
        CheckConstraint("op IN ('upsert', 'delete')", name="op_value"),
    )

    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("profiles.user_id", ondelete="CASCADE"), nullable=False)
    )
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(sa_column=Column(String(10), nullable=False))
    object_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    op: str = Field(sa_column=Column(String(10), nullable=False))
    reason: str = Field(sa_column=Column(String(30), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    changed_at: datetime = Field(sa_column=_now_column("changed_at"))


class IdempotencyKey(SQLModel, table=True):
    """A POST's `Idempotency-Key` and, once its transaction commits, its response.

    No foreign key to the profile: the key is claimed before a first write creates it.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        PrimaryKeyConstraint("user_id", "key"),
        CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="key_length"),
        Index("ix_idempotency_keys_user_id_expires_at", "user_id", "expires_at"),
    )

    user_id: str = Field(sa_column=Column(Text, nullable=False))
    key: str = Field(sa_column=Column(String(255), nullable=False))
    request_hash: str = Field(sa_column=Column(String(64), nullable=False))
    #: NULL while the first request runs (never visible to others: it commits with one).
    response_status: int | None = Field(default=None, sa_column=Column(SmallInteger, nullable=True))
    response_headers: dict[str, str] | None = Field(
        default=None, sa_column=Column(JSONB, nullable=True)
    )
    response_body: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    #: `response_body` is zlib-compressed (large bodies, such as a batch's, are).
    response_compressed: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    created_at: datetime = Field(sa_column=_now_column("created_at"))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


profiles_table = Profile.__table__  # type: ignore[attr-defined]
tasks_table = Task.__table__  # type: ignore[attr-defined]
lists_table = TaskList.__table__  # type: ignore[attr-defined]
tags_table = Tag.__table__  # type: ignore[attr-defined]
task_tags_table = TaskTag.__table__  # type: ignore[attr-defined]
changes_table = Change.__table__  # type: ignore[attr-defined]
idempotency_keys_table = IdempotencyKey.__table__  # type: ignore[attr-defined]


class EventTicket(SQLModel, table=True):
    """A single-use ticket that opens one event stream (deleted when spent). Its expiry
    and the user it was minted for are also signed into the ticket itself."""

    __tablename__ = "event_tickets"
    __table_args__ = (PrimaryKeyConstraint("user_id", "id"),)

    user_id: str = Field(sa_column=Column(Text, nullable=False))
    id: str = Field(sa_column=Column(String(32), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


event_tickets_table = EventTicket.__table__  # type: ignore[attr-defined]
