"""Profile shapes."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from todo_api.schemas.common import Line, UtcDateTime


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _iana_zone(value: str) -> str:
    # The database server's list is checked too, by the service (it is read at start-up).
    if value not in _zones():
        raise PydanticCustomError(
            "timezone_unsupported",
            "must be an IANA time zone name such as 'Europe/Paris' or 'UTC'",
        )
    return value


TimeZoneName = Annotated[str, AfterValidator(_iana_zone)]


class ProfilePublic(BaseModel):
    """The caller's profile: stored settings plus what the token says about them."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "usr_8f2k",
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "display_name": "Ada",
                "timezone": "Europe/London",
                "created_at": "2026-11-27T09:30:00Z",
                "updated_at": "2026-11-27T09:30:00Z",
            }
        }
    )

    user_id: str
    email: str | None = Field(description="From the token's `email` claim.")
    name: str | None = Field(description="From the token's `name` claim.")
    display_name: str | None = Field(description="Set by the user; null until then.")
    timezone: str = Field(description="IANA time zone name; `UTC` until set.")
    created_at: UtcDateTime | None = Field(description="Null until the user's first write.")
    updated_at: UtcDateTime | None


class ProfileUpdate(BaseModel):
    """PATCH body for the profile."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"display_name": "Ada", "timezone": "Europe/London"}},
    )

    display_name: Line | None = Field(default=None, min_length=1, max_length=100)
    timezone: TimeZoneName | None = Field(default=None, max_length=64)
