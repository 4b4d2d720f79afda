"""Dependency aliases: routes read like their signatures.

Every request to a resource takes one dependency, `ContextDep`: the verified caller,
their transaction and the app's shared objects, opened once. Dependencies are
`async def` even when they do no I/O: FastAPI runs plain `def` dependencies in a
worker thread, and that hand-off costs more than the work itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from todo_api.auth.principal import Principal
from todo_api.config import Settings
from todo_api.db.database import Database, Session
from todo_api.errors import Unauthorized
from todo_api.http.timeouts import COMMITTING
from todo_api.schemas.common import MAX_ID
from todo_api.services.cursors import CursorCodec
from todo_api.services.quotas import Quotas


@dataclass(frozen=True, slots=True)
class Shared:
    """What every request reads from the app, built once at start-up."""

    database: Database
    settings: Settings
    quotas: Quotas
    codec: CursorCodec


@dataclass(frozen=True, slots=True)
class Context:
    """One request: who is calling, their transaction, and the app's shared objects."""

    principal: Principal
    session: Session
    shared: Shared

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    @property
    def settings(self) -> Settings:
        return self.shared.settings

    @property
    def quotas(self) -> Quotas:
        return self.shared.quotas

    @property
    def codec(self) -> CursorCodec:
        return self.shared.codec


def principal_of(request: Request) -> Principal:
    """The caller, as verified by the authentication middleware."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized(code="token_missing")
    return principal


async def get_context(request: Request) -> AsyncIterator[Context]:
    """One transaction per request, opened as the caller and committed before the response.

    `scope="function"` (below) runs the commit when the handler returns, before FastAPI
    sends the response, so a failed commit can never follow a 2xx. A text search (`q`)
    has its statements planned for its values (see `Database.transaction`).
    """
    principal = principal_of(request)
    shared: Shared = request.app.state.shared
    params = request.query_params
    searching = bool(params.get("q") or params.get("search"))
    async with shared.database.transaction(principal.user_id, custom_plans=searching) as session:
        yield Context(principal, session, shared)
        # From here on the request may not be abandoned by its time limit.
        request.scope["state"][COMMITTING] = True


ContextDep = Annotated[Context, Depends(get_context, scope="function")]


async def get_principal(request: Request) -> Principal:
    """The caller, for routes that need no transaction."""
    return principal_of(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]

TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id (int64).")]
ListIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="List id (int64).")]
TagIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Tag id (int64).")]
