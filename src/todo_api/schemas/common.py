"""Field types shared by every resource."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

MAX_ID = 2**63 - 1


def _reject_unstorable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate (legal in JSON escapes)
    # cannot be encoded as UTF-8: both would otherwise fail deep in the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no unpaired surrogates)") from None
    return value


def _single_line(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


#: Text that PostgreSQL can store.
Text = Annotated[str, AfterValidator(_reject_unstorable)]
#: Trimmed, single-line text (titles, names).
Line = Annotated[
    str, BeforeValidator(_strip), AfterValidator(_reject_unstorable), AfterValidator(_single_line)
]


def _utc_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: A timestamp, always rendered in UTC with a `Z` suffix (RFC 3339).
UtcDateTime = Annotated[datetime, PlainSerializer(_utc_z, return_type=str, when_used="json")]


class Spelled(Enum):
    """An enum that also accepts its values in any case, and the other names clients
    send for them (`ALIASES`, lower case, on the subclass)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        key = value.strip().lower()
        key = _ALIASES.get(cls.__name__, {}).get(key, key)
        for member in cls:
            if member.value == key:
                return member
        return None


#: Other spellings by enum class name (lower case), mapped to the canonical value.
_ALIASES: dict[str, dict[str, str]] = {}


def spellings(enum_name: str, aliases: dict[str, str]) -> None:
    """Register the other spellings of `enum_name`'s values."""
    _ALIASES[enum_name] = aliases
