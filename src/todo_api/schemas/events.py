"""Live-update shapes: EventTicket."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from todo_api.schemas.common import UtcDateTime


class EventTicket(BaseModel):
    """A single-use ticket for `GET /api/{user_id}/events?ticket=...`."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "ticket": "WyJ1c3JfOGYyayIsIjNm...Q.bX3kA9...",
                "expires_at": "2026-12-07T23:10:30Z",
            }
        }
    )

    ticket: str = Field(description="Opaque; opens one stream, once, on any instance.")
    expires_at: UtcDateTime = Field(description="After this instant the ticket is refused.")
