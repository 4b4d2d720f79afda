"""Tag endpoints. Mounted at `/api/{user_id}` (documented) and `/api` (alias).

Tags are created by putting them on tasks (`tags: [...]`); here they are listed,
renamed (or merged) and deleted.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from todo_api.deps import ContextDep, ContextRoute, TagIdPath
from todo_api.http.preconditions import ETAG_HEADER, IfMatchDep, etag
from todo_api.http.prefer import PreferMinimalDep, deleted_responses, minimal_response
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX
from todo_api.schemas.tags import TagPublic, TagUpdate
from todo_api.services import tags as service

router = APIRouter(prefix=API_PREFIX, tags=["tags"], route_class=ContextRoute)


@router.get(
    "/tags",
    summary="List tags with task counts",
    response_model=list[TagPublic],
    responses=error_responses(401, 403),
)
async def list_tags(ctx: ContextDep) -> list[TagPublic]:
    """Every tag of the caller, sorted case-insensitively, with how many tasks carry it."""
    rows = await service.list_tags(ctx.session, ctx.user_id)
    return [TagPublic.model_validate(row) for row in rows]


@router.patch(
    "/tags/{tag_id}",
    summary="Rename or merge a tag",
    response_model=TagPublic,
    responses={**error_responses(401, 403, 404, 412, 422, 428), 200: {"headers": ETAG_HEADER}},
)
async def rename_tag(
    response: Response,
    ctx: ContextDep,
    tag_id: TagIdPath,
    data: TagUpdate,
    precondition: IfMatchDep,
) -> TagPublic:
    """Rename the tag. If another tag already has the new name (in any case), the two
    merge: its tasks carry the other tag, this one is deleted, and the result is the
    surviving tag. `If-Match` applies to this tag; the tasks carrying it get a new
    version (their `tags` read differently)."""
    row = await service.rename_tag(ctx.session, ctx.user_id, tag_id, data.name, precondition)
    response.headers["ETag"] = etag(row["version"])
    return TagPublic.model_validate(row)


@router.delete(
    "/tags/{tag_id}",
    summary="Delete a tag",
    response_model=TagPublic,
    responses={**error_responses(401, 403, 404, 412, 422, 428), **deleted_responses(TagPublic)},
)
async def delete_tag(
    ctx: ContextDep, tag_id: TagIdPath, precondition: IfMatchDep, minimal: PreferMinimalDep
) -> Response | TagPublic:
    """Delete the tag; the tasks that carried it lose it. Answers 200 with the tag as it
    was (204 with `Prefer: return=minimal`). `If-Match`: only if the tag is at that
    version."""
    row = await service.delete_tag(ctx.session, ctx.user_id, tag_id, precondition)
    return minimal_response() if minimal else TagPublic.model_validate(row)
