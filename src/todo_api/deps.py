"""Dependency aliases: routes read like their signatures.

Every request to a resource takes one dependency, `ContextDep`: the verified caller,
their transaction and the app's shared objects, opened once by the route class
(`ContextRoute`) rather than by a chain of dependencies. Dependencies are
`async def` even when they do no I/O: FastAPI runs plain `def` dependencies in a
worker thread, and that hand-off costs more than the work itself.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from todo_api.auth.principal import Principal
from todo_api.config import Settings
from todo_api.db.database import Database, Session
from todo_api.errors import Unauthorized
from todo_api.http.middleware import IGNORED_PARAMS, route_template
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
    #: The query parameters each operation reads, by (route template, method): from the
    #: OpenAPI schema, so they are the routes' own declarations.
    query_names: Mapping[tuple[str, str], frozenset[str]]


def query_names(schema: Mapping[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """Every operation's query parameter names, from an OpenAPI schema."""
    names = {}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            declared = operation.get("parameters", [])
            names[path, method.upper()] = frozenset(
                p["name"] for p in declared if p.get("in") == "query"
            )
    return names


def _note_ignored_params(request: Request, shared: Shared) -> None:
    """Query parameters the route does not read are ignored, but never silently: they
    are named in the response (`Ignored-Query-Params`) and in the access log."""
    known = shared.query_names.get((route_template(request.scope), request.method))
    if known is None:
        return
    ignored = [name for name in request.query_params if name not in known]
    if ignored:
        request.scope["state"][IGNORED_PARAMS] = ignored


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


#: Where `ContextRoute` keeps the request's `Context` (in the ASGI scope's state).
CONTEXT = "context"


async def get_context(request: Request) -> Context:
    """The request's context, opened by its route (`ContextRoute`)."""
    context = request.scope["state"].get(CONTEXT)
    if not isinstance(context, Context):
        # A route that takes `ContextDep` with another route class: a programming error,
        # caught at start-up by `tests/test_routing.py`.
        raise RuntimeError(f"{request.scope.get('route')} takes ContextDep but is no ContextRoute")
    return context


ContextDep = Annotated[Context, Depends(get_context)]


def uses_context(dependant: Dependant) -> bool:
    """Whether a route (its dependant) takes `ContextDep`, directly or through another
    dependency."""
    return dependant.call is get_context or any(uses_context(d) for d in dependant.dependencies)


class ContextRoute(APIRoute):
    """The route class of every resource route: one transaction per request.

    The transaction is opened as the caller before FastAPI solves the route's parameters
    and dependencies, and committed once the handler has built its response, before any
    of it is sent, so a failed commit can never follow a 2xx. An error rolls it back. A
    text search (`q`) has its statements planned for its values (see
    `Database.transaction`). Routes that do not take `ContextDep` run without one.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = self.transactional_handler()
        if not uses_context(self.dependant):
            return handler

        async def run(request: Request) -> Response:
            principal = principal_of(request)
            shared: Shared = request.app.state.shared
            state = request.scope["state"]
            searching = False
            if request.scope["query_string"]:
                params = request.query_params
                searching = bool(params.get("q") or params.get("search"))
                _note_ignored_params(request, shared)
            transaction = shared.database.transaction(principal.user_id, custom_plans=searching)
            async with transaction as session:
                state[CONTEXT] = Context(principal, session, shared)
                response = await handler(request)
                # From here on the request may not be abandoned by its time limit.
                state[COMMITTING] = True
            return response

        return run

    def transactional_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """What runs inside the transaction: FastAPI's handler of the route."""
        return super().get_route_handler()


async def get_principal(request: Request) -> Principal:
    """The caller, for routes that need no transaction."""
    return principal_of(request)


PrincipalDep = Annotated[Principal, Depends(get_principal)]

TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Task id (int64).")]
ListIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="List id (int64).")]
TagIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Tag id (int64).")]
