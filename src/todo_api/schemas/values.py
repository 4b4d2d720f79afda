"""Field types of the full task model: due values, instants, tags, rules, priorities."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictInt,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from todo_api.date_range import (
    RANGE_ERROR,
    RANGE_TEXT,
    date_in_range,
    instant_in_range,
    wall_time_in_range,
)
from todo_api.schemas.common import MAX_ID, Line, Spelled, _utc_z
from todo_api.services.recurrence import MAX_RULE_LENGTH, RuleError, normalize_rule

#: An id in a request body: a JSON integer in 1..2^63-1 (never a string or a float).
ObjectId = Annotated[StrictInt, Field(ge=1, le=MAX_ID, description="int64")]


class Priority(Spelled):
    """Stored as a rank (0..3); sorting by priority puts `high` first."""

    none = "none"
    low = "low"
    medium = "medium"
    high = "high"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _BY_RANK[rank]


_RANKS = {Priority.none: 0, Priority.low: 1, Priority.medium: 2, Priority.high: 3}
_BY_RANK = {rank: priority for priority, rank in _RANKS.items()}


class RepeatFrom(Spelled):
    """`due`: the next occurrence follows the schedule; `completion`: it is counted from
    the day the task was completed."""

    due = "due"
    completion = "completion"


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
#: A date-time without an offset, as `<input type="datetime-local">` sends it (seconds
#: optional): a wall-clock time in the profile's zone.
_LOCAL_DATE_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(:\d{2}(\.\d{1,9})?)?")
_DUE_MESSAGE = (
    "must be a date (YYYY-MM-DD), an RFC 3339 date-time with an offset "
    "(e.g. 2026-12-01T17:00:00Z) or a local date-time (2026-12-01T17:00)"
)


def _out_of_range() -> PydanticCustomError:
    return PydanticCustomError(RANGE_ERROR, f"must be {RANGE_TEXT}")


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset (e.g. Z or +01:00)")
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        raise _out_of_range() from None
    if not instant_in_range(instant):
        raise _out_of_range()
    return instant


def _in_range_day(value: date) -> date:
    if not date_in_range(value):
        raise _out_of_range()
    return value


def _in_range_wall_time(value: datetime) -> datetime:
    if not wall_time_in_range(value):
        raise _out_of_range()
    return value


def _parse_instant(text: str) -> datetime:
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 date-time with an offset (e.g. 2026-12-01T17:00:00Z)")
    day, clock, fraction, offset = match.groups()
    # Normalised to what `fromisoformat` reads on every Python: `+00:00`, six digits.
    offset = "+00:00" if offset in {"Z", "z"} else offset
    try:
        value = datetime.fromisoformat(f"{day}T{clock}{(fraction or '')[:7]}{offset}")
    except ValueError:
        raise ValueError("is not a valid date-time") from None
    return _aware_utc(value)


def parse_instant(value: object) -> datetime:
    """An RFC 3339 date-time with an offset, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return _aware_utc(value)
    if not isinstance(value, str):
        raise ValueError("must be a string holding an RFC 3339 date-time")
    return _parse_instant(value)


def _parse_local(text: str) -> datetime | None:
    """A local date-time (no offset) as a naive datetime, or None if `text` is not one."""
    match = _LOCAL_DATE_TIME.fullmatch(text)
    if match is None:
        return None
    day, clock, seconds, fraction = match.groups()
    seconds = (seconds or ":00")[:3]
    try:
        wall = datetime.fromisoformat(f"{day}T{clock}{seconds}{(fraction or '')[:7]}")
    except ValueError:
        raise ValueError("is not a valid date-time") from None
    return _in_range_wall_time(wall)


def parse_instant_or_local(value: object) -> datetime:
    """An RFC 3339 date-time with an offset (aware, UTC), or a local date-time without
    one (naive: a wall-clock time in the profile's zone, resolved by the database)."""
    if isinstance(value, str) and (local := _parse_local(value)) is not None:
        return local
    return parse_instant(value)


def parse_due(value: object) -> date | datetime:
    """A day (`YYYY-MM-DD`), an instant (RFC 3339 with offset), or a local date-time
    (naive: a wall-clock time in the profile's zone)."""
    if isinstance(value, datetime):
        return _aware_utc(value)
    if isinstance(value, date):
        return _in_range_day(value)
    if not isinstance(value, str):
        raise ValueError(_DUE_MESSAGE)
    if _DATE.fullmatch(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a valid date") from None
        return _in_range_day(day)
    if _DATE_TIME.fullmatch(value):
        return _parse_instant(value)
    local = _parse_local(value)
    if local is not None:
        return local
    raise ValueError(_DUE_MESSAGE)


#: What the schema states about the range (the pattern is the year; the offset or zone is
#: checked by the server).
_RANGE_NOTE = (
    f"Must be {RANGE_TEXT} once any offset or time zone is applied; otherwise 422 `{RANGE_ERROR}`."
)
_YEARS_PATTERN = "^(19|2[0-9])[0-9]{2}-"


def render_due(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return _utc_z(value)
    return value.isoformat()


DueValue = Annotated[
    date | datetime,
    PlainValidator(parse_due),
    PlainSerializer(render_due, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date", "pattern": _YEARS_PATTERN},
                {"type": "string", "format": "date-time", "pattern": _YEARS_PATTERN},
            ],
            "description": "A day (all-day, `YYYY-MM-DD`), an instant (RFC 3339 with "
            "offset), or a local date-time without one (`2026-12-01T17:00`, read in the "
            "profile's time zone). Instants are returned in UTC with `Z`. " + _RANGE_NOTE,
            "examples": ["2026-12-01", "2026-12-01T17:00:00Z", "2026-12-01T17:00"],
        }
    ),
]

Instant = Annotated[
    datetime,
    PlainValidator(parse_instant),
    PlainSerializer(_utc_z, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": _YEARS_PATTERN,
            "description": "RFC 3339 with an offset; returned in UTC with `Z`. " + _RANGE_NOTE,
            "examples": ["2026-12-01T08:30:00Z"],
        }
    ),
]


#: `remind_at`: an instant, or a local date-time read in the profile's time zone.
ReminderTime = Annotated[
    datetime,
    PlainValidator(parse_instant_or_local),
    PlainSerializer(_utc_z, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with an offset, or a local date-time without one "
            "(`2026-12-01T08:30`, read in the profile's time zone); returned in UTC "
            "with `Z`. " + _RANGE_NOTE,
            "pattern": _YEARS_PATTERN,
            "examples": ["2026-12-01T08:30:00Z", "2026-12-01T08:30"],
        }
    ),
]


def tag_key(name: str) -> str:
    """The case-insensitive identity of a tag name (NFKC, then case folding)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _dedupe_tags(value: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in value:
        seen.setdefault(tag_key(name), name)
    return list(seen.values())


TagName = Annotated[Line, Field(min_length=1, max_length=50)]
#: At most 20 names; duplicates that differ only in case collapse into the first.
TagList = Annotated[
    list[TagName],
    Field(max_length=20, examples=[["work", "home"]]),
    AfterValidator(_dedupe_tags),
]


def _rule(value: str) -> str:
    try:
        return normalize_rule(value)
    except RuleError as error:
        raise PydanticCustomError(
            "recurrence_invalid", "recurrence {reason}", {"reason": str(error)}
        ) from None


def _reject_non_strings(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a string holding an RRULE such as FREQ=WEEKLY;BYDAY=MO")
    return value


RecurrenceRule = Annotated[
    str,
    BeforeValidator(_reject_non_strings),
    Field(
        max_length=MAX_RULE_LENGTH,
        description="An RFC 5545 RRULE: FREQ=DAILY|WEEKLY|MONTHLY|YEARLY with INTERVAL, "
        "COUNT or UNTIL, BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS, WKST.",
        examples=["FREQ=WEEKLY;BYDAY=MO,WE", "FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=12"],
    ),
    AfterValidator(_rule),
]
