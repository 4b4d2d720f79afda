"""HTTP conditional requests on versioned objects (RFC 9110 §13): ETag, If-Match,
If-None-Match.

The ETag of a task, list or tag is its integer `version` as a *strong* entity tag,
`"7"`: `If-Match` requires strong comparison, so a weak tag could never satisfy it.
The representation of one version never changes (everything a response shows that is
derived from other rows — tag names, `next_occurrence_id` — raises the version when it
changes), which is what a strong tag promises.

The check is part of the write statement (`AND version IN (...)`); a 412 is only
diagnosed, with a follow-up read, after that statement matched nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from todo_api.errors import PreconditionRequired
from todo_api.services.versions import Precondition, etag, tags_of

__all__ = ["Precondition", "etag"]


def require(settings: Any, precondition: Precondition | None) -> None:
    """With REQUIRE_IF_MATCH, a write without a precondition is refused."""
    if precondition is None and settings.require_if_match:
        raise PreconditionRequired()


async def if_match(
    request: Request,
    header: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=1024,
            description='Apply only if the object\'s ETag is one of these (`"7"`) or `*`; '
            "otherwise 412 with the current object. Required (428) when the server "
            "runs with `REQUIRE_IF_MATCH=true`.",
        ),
    ] = None,
) -> Precondition | None:
    """The request's `If-Match`, parsed."""
    precondition = Precondition.parse(header) if header is not None else None
    require(request.app.state.settings, precondition)
    return precondition


IfMatchDep = Annotated[Precondition | None, Depends(if_match)]


#: A GET's `If-None-Match`, read as a plain header parameter of the route (no dependency
#: to solve: GETs of one object are the most frequent requests) and compared by
#: `not_modified`.
IfNoneMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        max_length=1024,
        description="304 without a body when the object's ETag is one of these "
        "(weak comparison) or `*`.",
    ),
]


def not_modified(header: str | None, version: int) -> Response | None:
    """The 304 for a GET whose `If-None-Match` header names the current version."""
    if header is None:
        return None
    tags = tags_of(header)
    mine = etag(version)
    if "*" in tags or any(tag.removeprefix("W/") == mine for tag in tags):
        return Response(status_code=304, headers={"ETag": mine})
    return None


#: OpenAPI fragments for the routes.
ETAG_HEADER = {
    "ETag": {
        "description": 'The object\'s version as a strong entity tag, e.g. `"7"`.',
        "schema": {"type": "string"},
    }
}
REPLAYED_HEADER = {
    "Idempotency-Replayed": {
        "description": "`true` when this is the stored response of an earlier request "
        "with the same `Idempotency-Key`.",
        "schema": {"type": "string"},
    }
}
#: The headers of a POST's success that takes `Idempotency-Key`.
POSTED_HEADERS = {**ETAG_HEADER, **REPLAYED_HEADER}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: `If-None-Match` names the current version."}
}
