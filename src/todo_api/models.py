"""Table models. Request and response shapes live in `todo_api.schemas`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlmodel import Field, SQLModel

# Stable constraint names, so migrations can refer to them and autogenerate never drifts.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _now_column(name: str) -> Column[datetime]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


class Profile(SQLModel, table=True):
    """A user's settings. The row appears on the user's first write; reads never create it."""

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


class Task(SQLModel, table=True):
    """One task of one user."""

    __tablename__ = "tasks"
    __table_args__ = (
        # Lets later tables point at a task with a composite (user_id, task_id) key,
        # so a row can never reference another user's task.
        UniqueConstraint("user_id", "id"),
        CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="title_length"),
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index(
            "ix_tasks_user_id_completed_created_at_id", "user_id", "completed", "created_at", "id"
        ),
        Index("ix_tasks_user_id_title_id", "user_id", "title", "id"),
        Index("ix_tasks_user_id_completed_title_id", "user_id", "completed", "title", "id"),
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


profiles_table = Profile.__table__  # type: ignore[attr-defined]
tasks_table = Task.__table__  # type: ignore[attr-defined]
