"""The caller's profile at `/api/{user_id}` (and `/api/me`)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from todo_api.deps import PrincipalDep, SessionDep
from todo_api.errors import error_responses
from todo_api.schemas.profile import ProfilePublic, ProfileUpdate
from todo_api.services import profiles as service

router = APIRouter(tags=["profile"])


@router.get(
    "", summary="Get the profile", response_model=ProfilePublic, responses=error_responses(401, 403)
)
async def get_profile(principal: PrincipalDep, session: SessionDep) -> ProfilePublic:
    """The caller's settings, with `email` and `name` from the token. Never writes."""
    return await service.get_profile(session, principal)


@router.patch(
    "",
    summary="Update the profile",
    response_model=ProfilePublic,
    responses=error_responses(401, 403, 422),
)
async def update_profile(
    principal: PrincipalDep, session: SessionDep, data: ProfileUpdate
) -> ProfilePublic:
    """Set `display_name` and/or `timezone` (an IANA name; null resets it to UTC)."""
    return await service.update_profile(session, principal, data)


@router.delete(
    "",
    summary="Erase the account's data",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(401, 403),
)
async def delete_profile(principal: PrincipalDep, session: SessionDep) -> None:
    """Erase the profile and every task of the caller. The same token then sees an empty,
    fresh account."""
    await service.erase_user(session, principal.user_id)
