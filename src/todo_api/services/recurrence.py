"""Recurring tasks: RRULE validation and the next occurrence's dates (pure, no SQL).

A task's `recurrence` is an RFC 5545 RRULE restricted to what a todo list needs:
FREQ of DAILY, WEEKLY, MONTHLY or YEARLY (nothing finer), INTERVAL, COUNT or UNTIL,
BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS and WKST. Dates are computed on wall-clock time
in the profile's time zone, so "every day at 09:00" stays at 09:00 across DST changes.

COUNT counts the occurrences left, this one included: completing an occurrence of
`COUNT=3` creates the next one with `COUNT=2`, and completing `COUNT=1` ends the series.

Occurrences stay within the accepted range of dates (`todo_api.date_range`): a series
whose next date would fall past 2999 ends there. dateutil walks a rule period by period
until the year 9999 when a rule can never match (`BYMONTH=2;BYMONTHDAY=30` takes
seconds, and an UNTIL does not stop it), so every rule is first tried on a window of
`_PROBE_YEARS` years just before that limit: a rule with no occurrence there is
refused. That bounds every later expansion by the rule's real gap between dates. The
probe is also where a rule dateutil cannot expand at all (it raises) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from todo_api.date_range import END, date_in_range, instant_in_range

MAX_RULE_LENGTH = 500
MAX_COUNT = 1000
#: Largest INTERVAL per FREQ: at most about ten years between two occurrences.
MAX_INTERVAL = {"DAILY": 3660, "WEEKLY": 520, "MONTHLY": 120, "YEARLY": 10}
_PROBE_YEARS = 16
_PROBE_START = datetime(9999 - _PROBE_YEARS + 1, 1, 1)
#: The end of the range as a wall time: no occurrence at or past it is used.
_WALL_END = END.replace(tzinfo=None)
#: What dateutil raises for a rule it accepts but cannot expand (e.g. an ordinal weekday
#: beyond the month's length under BYMONTH).
_EXPANSION_ERRORS = (IndexError, ValueError, OverflowError, TypeError)

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_INTEGER = re.compile(r"[+-]?\d{1,4}")
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z?))?")
_ALLOWED = (
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
)


class RuleError(ValueError):
    """The text is not a recurrence rule this service accepts; the message says why."""


def _int_list(name: str, value: str, low: int, high: int, signed: bool) -> None:
    items = value.split(",")
    if len(items) > 31:
        raise RuleError(f"{name} lists too many values")
    for item in items:
        if not _INTEGER.fullmatch(item):
            raise RuleError(f"{name} must be a comma-separated list of integers")
        number = int(item)
        if number == 0 or not low <= abs(number) <= high or (number < 0 and not signed):
            bounds = f"±{low}..{high}" if signed else f"{low}..{high}"
            raise RuleError(f"{name} values must be in {bounds}")


def _check_byday(value: str, freq: str, by_month: bool) -> None:
    items = value.split(",")
    if len(items) > 31:
        raise RuleError("BYDAY lists too many values")
    for item in items:
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise RuleError("BYDAY must list weekdays such as MO,WE or 1MO,-1FR")
        if match.group(1) is not None:
            if freq not in {"MONTHLY", "YEARLY"}:
                raise RuleError("BYDAY ordinals (like 1MO) need FREQ=MONTHLY or FREQ=YEARLY")
            ordinal = int(match.group(1))
            # Under BYMONTH, a yearly rule's ordinal counts within the month (RFC 5545).
            limit = 5 if freq == "MONTHLY" or by_month else 53
            if ordinal == 0 or abs(ordinal) > limit:
                raise RuleError(f"BYDAY ordinals must be in ±1..{limit}")


def _until(value: str) -> tuple[date, time | None, bool]:
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise RuleError("UNTIL must be YYYYMMDD or YYYYMMDDTHHMMSSZ")
    day_text, time_text, utc = match.groups()
    try:
        day = date(int(day_text[:4]), int(day_text[4:6]), int(day_text[6:]))
        at = None
        if time_text is not None:
            at = time(int(time_text[:2]), int(time_text[2:4]), int(time_text[4:]))
    except ValueError:
        raise RuleError("UNTIL is not a valid date") from None
    return day, at, bool(utc)


def parse_rule(text: str) -> dict[str, str]:
    """The rule's parts, upper-cased and validated, in the order given."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"must be at most {MAX_RULE_LENGTH} characters")
    body = text.strip().upper()
    if body.startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body.isascii() or not body:
        raise RuleError("must be an RRULE such as FREQ=WEEKLY;BYDAY=MO,WE")
    parts: dict[str, str] = {}
    for chunk in body.split(";"):
        name, sep, value = chunk.partition("=")
        if not sep or not value:
            raise RuleError(f"{chunk!r} is not a NAME=VALUE rule part")
        if name not in _ALLOWED:
            raise RuleError(f"{name} is not supported; use {', '.join(_ALLOWED)}")
        if name in parts:
            raise RuleError(f"{name} appears twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq is None:
        raise RuleError("FREQ is required")
    if freq not in MAX_INTERVAL:
        raise RuleError("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    if "INTERVAL" in parts:
        _int_list("INTERVAL", parts["INTERVAL"], 1, MAX_INTERVAL[freq], signed=False)
        if "," in parts["INTERVAL"]:
            raise RuleError("INTERVAL is a single number")
    if "COUNT" in parts:
        _int_list("COUNT", parts["COUNT"], 1, MAX_COUNT, signed=False)
        if "," in parts["COUNT"]:
            raise RuleError("COUNT is a single number")
        if "UNTIL" in parts:
            raise RuleError("COUNT and UNTIL cannot be combined")
    if "UNTIL" in parts:
        _until(parts["UNTIL"])
    if "BYDAY" in parts:
        _check_byday(parts["BYDAY"], freq, "BYMONTH" in parts)
    if "BYMONTHDAY" in parts:
        _int_list("BYMONTHDAY", parts["BYMONTHDAY"], 1, 31, signed=True)
    if "BYMONTH" in parts:
        _int_list("BYMONTH", parts["BYMONTH"], 1, 12, signed=False)
    if "BYSETPOS" in parts:
        _int_list("BYSETPOS", parts["BYSETPOS"], 1, 366, signed=True)
        if not {"BYDAY", "BYMONTHDAY", "BYMONTH"} & set(parts):
            raise RuleError("BYSETPOS needs another BY... part")
    if "WKST" in parts and parts["WKST"] not in _WEEKDAYS:
        raise RuleError("WKST must be a weekday such as MO")
    return parts


def _render(parts: dict[str, str]) -> str:
    return ";".join(f"{name}={value}" for name, value in parts.items())


def _expander(parts: dict[str, str], start: datetime) -> rrule:
    """The rule without COUNT and UNTIL (handled here, not by dateutil), from `start`."""
    core = {k: v for k, v in parts.items() if k not in {"COUNT", "UNTIL"}}
    try:
        rule = rrulestr(_render(core), dtstart=start)
    except (ValueError, TypeError) as error:
        raise RuleError(f"is not a valid RRULE: {error}") from None
    assert isinstance(rule, rrule)
    return rule


def _first(expander: rrule, moment: datetime, *, inc: bool = False) -> datetime | None:
    """`expander.after(moment)`, with a rule dateutil fails to expand as a RuleError."""
    try:
        found: datetime | None = expander.after(moment, inc=inc)
    except _EXPANSION_ERRORS:
        raise RuleError("cannot be expanded into dates") from None
    return found


def _after(expander: rrule, moment: datetime, until: datetime | None) -> datetime | None:
    """The first occurrence after `moment`, no later than `until` and before the end of
    the range, or None."""
    limit = _WALL_END if until is None else min(until, _WALL_END)
    found = _first(expander.replace(until=limit), moment)
    if found is None or found >= _WALL_END:
        return None
    return found


def normalize_rule(text: str) -> str:
    """Validate a client's rule and return its canonical spelling, or raise RuleError."""
    parts = parse_rule(text)
    # Checked for new rules only: a stored one with a later UNTIL still runs to 2999.
    if "UNTIL" in parts and not date_in_range(_until(parts["UNTIL"])[0]):
        raise RuleError("UNTIL must be in the years 1900 to 2999")
    if _first(_expander(parts, _PROBE_START), _PROBE_START, inc=True) is None:
        raise RuleError(f"never occurs (or less than once in {_PROBE_YEARS} years)")
    return _render(parts)


@dataclass(frozen=True)
class Occurrence:
    """The dates of the next occurrence, and the rule it carries on with."""

    due_date: date | None
    due_at: datetime | None
    recurrence: str
    remind_at: datetime | None


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    # A wall time inside a spring-forward gap resolves with the offset before the
    # change (fold=0), i.e. it lands just after the gap.
    return wall.replace(tzinfo=zone).astimezone(UTC)


def next_occurrence(
    rule: str,
    *,
    due_date: date | None,
    due_at: datetime | None,
    zone_name: str,
    repeat_from: str,
    completed_at: datetime,
    remind_at: datetime | None,
) -> Occurrence | None:
    """The occurrence after the one being completed, or None when the series ends: by
    its COUNT or UNTIL, at the end of the range of dates, or because the stored rule is
    one this version no longer accepts (completing the task must still succeed)."""
    try:
        parts = parse_rule(rule)
    except RuleError:
        return None
    count = int(parts["COUNT"]) if "COUNT" in parts else None
    if (due_date is None and due_at is None) or (count is not None and count <= 1):
        return None
    zone = ZoneInfo(zone_name)
    try:
        if due_date is not None:
            anchor = datetime.combine(due_date, time())
        else:
            assert due_at is not None
            anchor = _local(due_at, zone)
        start = anchor
        if repeat_from == "completion":
            start = datetime.combine(_local(completed_at, zone).date(), anchor.time())
        return _following(parts, anchor, start, zone, due_date is not None, count, remind_at)
    except (OverflowError, RuleError):
        return None  # past the edge of the calendar, or a rule that cannot be expanded


def _following(
    parts: dict[str, str],
    anchor: datetime,
    start: datetime,
    zone: ZoneInfo,
    all_day: bool,
    count: int | None,
    remind_at: datetime | None,
) -> Occurrence | None:
    until = None
    if "UNTIL" in parts:
        day, at, utc = _until(parts["UNTIL"])
        if at is None:
            until = datetime.combine(day, time(23, 59, 59))
        elif utc:
            until = _local(datetime.combine(day, at, tzinfo=UTC), zone)
        else:
            until = datetime.combine(day, at)
    following = _after(_expander(parts, start), start, until)
    if following is None:
        return None
    if count is not None:
        parts["COUNT"] = str(count - 1)
    next_remind = None
    if remind_at is not None:
        next_remind = _instant(following + (_local(remind_at, zone) - anchor), zone)
        if not instant_in_range(next_remind):
            return None
    if all_day:
        return Occurrence(following.date(), None, _render(parts), next_remind)
    due_at = _instant(following, zone)
    if not instant_in_range(due_at):
        return None
    return Occurrence(None, due_at, _render(parts), next_remind)
