"""The caller's profile at `/api/{user_id}` (and `/api/me`)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from todo_api.deps import ContextDep, ContextRoute
from todo_api.http.problems import error_responses
from todo_api.routes import API_PREFIX
from todo_api.schemas.profile import ProfilePublic, ProfileUpdate
from todo_api.services import profiles as service

router = APIRouter(prefix=API_PREFIX, tags=["profile"], route_class=ContextRoute)


@router.get(
    "", summary="Get the profile", response_model=ProfilePublic, responses=error_responses(401, 403)
)
async def get_profile(ctx: ContextDep) -> ProfilePublic:
    """The caller's settings, with `email` and `name` from the token. Never writes."""
    return await service.get_profile(ctx.session, ctx.principal)


@router.patch(
    "",
    summary="Update the profile",
    response_model=ProfilePublic,
    responses=error_responses(401, 403, 422),
)
async def update_profile(ctx: ContextDep, data: ProfileUpdate) -> ProfilePublic:
    """Set `display_name` and/or `timezone` (an IANA name that the database server knows
    too; null resets it to UTC)."""
    zones = ctx.shared.database.time_zones
    return await service.update_profile(ctx.session, ctx.principal, data, zones)


@router.delete(
    "",
    summary="Erase the account's data",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403),
)
async def delete_profile(ctx: ContextDep) -> None:
    """Erase the profile and every task of the caller. The same token then sees an empty,
    fresh account."""
    await service.erase_user(ctx.session, ctx.user_id)
