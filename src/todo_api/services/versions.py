"""Object versions: the `If-Match` precondition a write carries, and the 412 it raises.

See `todo_api/preconditions.py` for the HTTP side (ETag, If-Match, If-None-Match).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, true

from todo_api.errors import PreconditionFailed

#: Versions are PostgreSQL `integer`s; a larger number can never match (and must never
#: reach the driver).
_MAX_VERSION = 2**31 - 1


def etag(version: int) -> str:
    return f'"{version}"'


def tags_of(header: str) -> list[str]:
    return [item.strip() for item in header.split(",") if item.strip()]


def _version(tag: str) -> int | None:
    if len(tag) < 3 or not (tag.startswith('"') and tag.endswith('"')):
        return None
    digits = tag[1:-1]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
        return None
    number = int(digits)
    return number if 1 <= number <= _MAX_VERSION else None


@dataclass(frozen=True)
class Precondition:
    """A parsed `If-Match`: `*` (any current version) or the acceptable versions."""

    any_version: bool
    versions: tuple[int, ...]

    @classmethod
    def parse(cls, header: str) -> Precondition:
        tags = tags_of(header)
        if "*" in tags:
            return cls(True, ())
        # Weak tags (W/"3") never match under the strong comparison If-Match uses.
        versions = (_version(tag) for tag in tags)
        return cls(False, tuple(sorted({v for v in versions if v is not None})))

    @classmethod
    def from_version(cls, version: int | None) -> Precondition | None:
        """A batch operation's `if_version`."""
        return None if version is None else cls(False, (version,))

    def clause(self, column: Any) -> ColumnElement[bool]:
        """The condition to add to the write's WHERE."""
        if self.any_version:
            return true()
        return column.in_(self.versions)  # type: ignore[no-any-return]

    def matches(self, version: int) -> bool:
        return self.any_version or version in self.versions


def stale(current: dict[str, Any], version: int, kind: str) -> PreconditionFailed:
    """The 412 for an object whose version is not the one the client named."""
    return PreconditionFailed(
        f"The {kind} is at version {version}; re-read it (it is in `current`), reapply "
        "your change and send it with the new `If-Match`.",
        headers={"ETag": etag(version)},
        extra={"current": current},
    )
