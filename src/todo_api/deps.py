"""Dependency aliases: routes read like their signatures.

Every dependency is `async def`, even when it does no I/O: FastAPI runs plain `def`
dependencies in a worker thread, and that hand-off costs more than the work itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.exceptions import HTTPException as StarletteHTTPException

from todo_api.auth import RESERVED_USER_IDS, Principal
from todo_api.db import Database
from todo_api.errors import Forbidden, NotFound, Unauthorized, allowed_methods
from todo_api.schemas.common import MAX_ID
from todo_api.services.quotas import Quotas
from todo_api.services.tasks import CursorCodec
from todo_api.timeouts import COMMITTING


async def get_principal(request: Request) -> Principal:
    """The caller, as verified by the authentication middleware."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized(code="token_missing")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_session(request: Request, principal: PrincipalDep) -> AsyncIterator[AsyncConnection]:
    """One transaction per request, opened as the caller and committed before the response.

    `scope="function"` (below) runs the commit when the handler returns, before FastAPI
    sends the response, so a failed commit can never follow a 2xx.
    """
    database: Database = request.app.state.database
    async with database.user_session(principal.user_id) as session:
        yield session
        # From here on the request may not be abandoned by its time limit.
        request.scope["state"][COMMITTING] = True


SessionDep = Annotated[AsyncConnection, Depends(get_session, scope="function")]


async def get_cursor_codec(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursor_codec
    return codec


CursorCodecDep = Annotated[CursorCodec, Depends(get_cursor_codec)]


async def get_quotas(request: Request) -> Quotas:
    """The per-user limits, read from the settings once when the app is built."""
    quotas: Quotas = request.app.state.quotas
    return quotas


QuotasDep = Annotated[Quotas, Depends(get_quotas)]


async def check_path_user(
    request: Request,
    principal: PrincipalDep,
    user_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=255,
            description="The token's `sub`, or `me`.",
            examples=["me"],
        ),
    ],
) -> None:
    """`/api/{user_id}/...` must name the caller (or use the alias `me`)."""
    if user_id in RESERVED_USER_IDS and user_id != "me":
        # A resource word is never a user id: `/api/tasks` with a profile method is a
        # 405 on the task collection; a word with no routes of its own is a 404.
        allowed = allowed_methods(request)
        if allowed:
            raise StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
        raise NotFound()
    if user_id != "me" and user_id != principal.user_id:
        raise Forbidden(code="user_mismatch")


TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id (int64).")]
ListIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="List id (int64).")]
TagIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Tag id (int64).")]
