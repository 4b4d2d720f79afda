"""The service's idea of "now" for rules that depend on the date (overdue, recurrence).

Kept in one function so tests can move time to daylight-saving edges; timestamps that
rows carry (`created_at`, `completed_at`, ...) come from the database's `now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)
