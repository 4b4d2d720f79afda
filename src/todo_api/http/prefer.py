"""`Prefer: return=minimal` (RFC 7240) on DELETE: 204 without the deleted object."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header
from starlette.responses import Response


async def prefers_minimal(
    header: Annotated[
        str | None,
        Header(
            alias="Prefer",
            max_length=1024,
            description="`return=minimal`: answer 204 without a body instead of 200 with "
            "the deleted object.",
            examples=["return=minimal"],
        ),
    ] = None,
) -> bool:
    """Whether the client asked for no representation in the response."""
    if header is None:
        return False
    for preference in header.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False


PreferMinimalDep = Annotated[bool, Depends(prefers_minimal)]

#: The answer to a DELETE sent with `Prefer: return=minimal`.
MINIMAL_APPLIED = {"Preference-Applied": "return=minimal"}


def minimal_response() -> Response:
    return Response(status_code=204, headers=MINIMAL_APPLIED)


def deleted_responses(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries of a DELETE answering 200 with `model`, or 204 when minimal."""
    return {
        200: {"description": "Deleted; the object as it was.", "model": model},
        204: {
            "description": "Deleted (with `Prefer: return=minimal`).",
            "headers": {
                "Preference-Applied": {
                    "description": "`return=minimal`.",
                    "schema": {"type": "string"},
                }
            },
        },
    }
