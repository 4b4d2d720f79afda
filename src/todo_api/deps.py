"""Dependency aliases: routes read like their signatures.

Every dependency is `async def`, even when it does no I/O: FastAPI runs plain `def`
dependencies in a worker thread, and that hand-off costs more than the work itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    async with _session(request, principal, custom_plans=False) as session:
        yield session


async def get_list_session(
    request: Request, principal: PrincipalDep
) -> AsyncIterator[AsyncConnection]:
    """`get_session` for task lists: a text search (`q`) has its statement planned for
    its values (see `Database.user_session`)."""
    searching = bool(request.query_params.get("q"))
    async with _session(request, principal, custom_plans=searching) as session:
        yield session


@asynccontextmanager
async def _session(
    request: Request, principal: Principal, *, custom_plans: bool
) -> AsyncIterator[AsyncConnection]:
    database: Database = request.app.state.database
    async with database.user_session(principal.user_id, custom_plans=custom_plans) as session:
        yield session
        # From here on the request may not be abandoned by its time limit.
        request.scope["state"][COMMITTING] = True


SessionDep = Annotated[AsyncConnection, Depends(get_session, scope="function")]
ListSessionDep = Annotated[AsyncConnection, Depends(get_list_session, scope="function")]


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
