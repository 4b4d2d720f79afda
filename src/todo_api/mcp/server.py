"""The MCP server: `tools/list` and `tools/call` over Streamable HTTP, stateless.

Every call is one HTTP request that has already passed the app's middleware: its token
is verified (the `Principal` is in the request's state), it is rate limited and its body
size bounded. Nothing is kept between requests, so any instance answers any call.

A tool's failure is a tool result with `isError: true` whose structured content is the
problem REST would answer (`status`, `code`, `detail`, and `errors` for invalid
arguments), never a stack trace or SQL. Only what the protocol itself refuses (an
unknown tool, arguments that are not an object, malformed JSON-RPC) is a JSON-RPC
error, answered by the SDK.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import mcp_types as types
from fastapi import FastAPI
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from todo_api.db.constraints import database_problem
from todo_api.deps import Context, Shared, principal_of
from todo_api.errors import AppError, Unprocessable
from todo_api.http.problems import send_problem, validation_items
from todo_api.http.timeouts import COMMITTING
from todo_api.mcp.metadata import MCP_PATH, METADATA_PATHS, protected_resource_metadata
from todo_api.mcp.tools import TOOLS, Outcome
from todo_api.observability.redaction import hide_statement_parameters

error_log = logging.getLogger("todo_api.errors")

INSTRUCTIONS = (
    "Tools for the signed-in user's tasks. Every call acts as the user whose token the "
    "client sent, and sees only that user's tasks, lists and tags. A failed call returns "
    "`isError: true` with the API's error `code` (for example `task_not_found`, "
    "`validation_failed`) and a sentence saying what to change."
)


def _error(status: int, code: str, detail: str, **extra: Any) -> types.CallToolResult:
    problem = {"status": status, "code": code, "detail": detail, **extra}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{code}: {detail}")],
        structured_content=problem,
        is_error=True,
    )


def _app_error(error: AppError) -> types.CallToolResult:
    # `extra` holds what REST adds to the problem (the current task on a 412, ...); REST's
    # `Retry-After` header (503) becomes `retry_after`, in seconds.
    extra = dict(error.extra)
    retry_after = (error.headers or {}).get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        extra["retry_after"] = int(retry_after)
    return _error(error.status, error.code, error.detail, **extra)


def _invalid(error: ValidationError) -> types.CallToolResult:
    return _error(
        Unprocessable.status,
        Unprocessable.code,
        "The arguments are not valid; see `errors`.",
        errors=validation_items(error.errors()),
    )


def _request_of(ctx: ServerRequestContext[Any, Any]) -> Request:
    request = ctx.request
    if not isinstance(request, Request):
        # Only the HTTP transport is served; it always carries the request.
        raise MCPError(types.INTERNAL_ERROR, "The call arrived without its HTTP request.")
    return request


@functools.cache
def _described() -> list[types.Tool]:
    # The schemas never change while the process runs: built once, on first use.
    return [tool.describe() for tool in TOOLS.values()]


async def list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    """Every tool, with its input and output schemas and hints."""
    return types.ListToolsResult(tools=_described())


async def call_tool(
    ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
) -> types.CallToolResult:
    """Run one tool as the token's subject, in one transaction committed before the
    result is sent."""
    tool = TOOLS.get(params.name)
    if tool is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name[:100]}")
    request = _request_of(ctx)
    principal = principal_of(request)
    shared: Shared = request.app.state.shared
    try:
        arguments = tool.arguments.model_validate(params.arguments or {})
        searching = tool.searches(arguments)
        async with shared.database.transaction(principal.user_id, custom_plans=searching) as s:
            outcome: Outcome = await tool.run(Context(principal, s, shared), arguments)
            # As for a route: from here on the request's time limit waits for the commit.
            request.scope.setdefault("state", {})[COMMITTING] = True
    except ValidationError as error:
        return _invalid(error)
    except AppError as error:
        return _app_error(error)
    except asyncpg.PostgresError as error:
        problem = database_problem(error)
        if problem is None:
            return _unexpected(request, error)
        return _app_error(problem)
    except Exception as error:
        return _unexpected(request, error)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.text)],
        structured_content=outcome.data,
    )


def _unexpected(request: Request, error: Exception) -> types.CallToolResult:
    """A bug: logged with its traceback and the request id; the agent gets a generic
    error (as REST answers a generic 500)."""
    hide_statement_parameters(error)
    request_id = request.scope.get("state", {}).get("request_id")
    error_log.error(
        "unhandled error in an MCP tool", exc_info=error, extra={"request_id": request_id}
    )
    return _error(
        500,
        "internal_error",
        "The server failed to handle this call. Quote the request id when reporting it.",
        request_id=request_id,
    )


def build_server() -> Server[Any]:
    """The MCP server and its two handlers."""
    return Server(
        "todo-api",
        version="0.1.0",
        title="Todo API",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class MCPEndpoint:
    """The ASGI app at `/mcp`: hands the request to the running session manager."""

    #: The route template the access log and the metrics show for these requests.
    path = MCP_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI records the matched route in the scope for its own routes only.
        scope["route"] = self
        if scope["method"] != "POST":
            # Stateless and JSON-only: no server-initiated stream to open with GET (the
            # transport's answer to which is 405), no session to end with DELETE.
            await send_problem(
                scope,
                send,
                405,
                "method_not_allowed",
                "This MCP endpoint answers POST only: it keeps no session and opens no stream.",
                {"Allow": "POST"},
            )
            return
        manager: StreamableHTTPSessionManager = scope["app"].state.mcp
        await manager.handle_request(scope, receive, send)


@asynccontextmanager
async def serve_mcp(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP transport for the app's lifetime (a manager runs only once, so each
    lifespan gets its own)."""
    manager = StreamableHTTPSessionManager(
        app=build_server(),
        json_response=True,
        stateless=True,
        max_request_body_size=app.state.settings.max_body_bytes,
    )
    async with manager.run():
        app.state.mcp = manager
        yield


def routes() -> list[BaseRoute]:
    """`/mcp` and its protected-resource metadata (RFC 9728), for the app's router."""
    # A `Route` whose endpoint is an ASGI app gets every method; `MCPEndpoint` answers.
    found: list[BaseRoute] = [Route(MCP_PATH, MCPEndpoint(), include_in_schema=False)]
    for path in METADATA_PATHS:
        found.append(
            Route(path, protected_resource_metadata, methods=["GET"], include_in_schema=False)
        )
    return found
