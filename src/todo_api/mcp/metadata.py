"""OAuth 2.0 Protected Resource Metadata (RFC 9728) for `/mcp`.

An MCP client that gets a 401 from `/mcp` reads the `resource_metadata` URL from the
`WWW-Authenticate` challenge, fetches this document and learns which authorization
server(s) issue the tokens this service accepts. It names only what is configured:
`BETTER_AUTH_URL` (the issuer Better Auth's JWT plugin stamps, or `JWT_ISSUER` when
that is set), else `JWT_ISSUER`; with neither, `authorization_servers` is left out.
"""

from __future__ import annotations

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope

from todo_api.config import Settings

#: Where the MCP endpoint is mounted.
MCP_PATH = "/mcp"
#: RFC 9728 §3.1: the well-known prefix, followed by the resource's path.
METADATA_PATH = "/.well-known/oauth-protected-resource"
METADATA_PATHS = (METADATA_PATH, METADATA_PATH + MCP_PATH)


def is_mcp_path(path: str) -> bool:
    """Whether `path` is the MCP endpoint (with or without a trailing slash)."""
    return path == MCP_PATH or path == MCP_PATH + "/"


def _base_url(scope: Scope) -> str:
    # RFC 9728 needs absolute URLs. PUBLIC_URL names them; without it, the origin the
    # client reached (forwarded headers count only from FORWARDED_ALLOW_IPS, which
    # uvicorn applies before this).
    settings: Settings = scope["app"].state.settings
    if settings.public_url:
        return settings.public_url
    url = URL(scope=scope)
    root = scope.get("root_path", "")
    return f"{url.scheme}://{url.netloc}{root}"


def resource_url(scope: Scope) -> str:
    """The protected resource's identifier: the URL of `/mcp`."""
    return _base_url(scope) + MCP_PATH


def metadata_url(scope: Scope) -> str:
    """The metadata document's URL, as named in a 401's `WWW-Authenticate`."""
    return _base_url(scope) + METADATA_PATH + MCP_PATH


def authorization_servers(settings: Settings) -> list[str]:
    """The issuers whose tokens this service verifies."""
    if settings.better_auth_url:
        return [settings.jwt_issuer or settings.better_auth_url]
    return [settings.jwt_issuer] if settings.jwt_issuer else []


async def protected_resource_metadata(request: Request) -> JSONResponse:
    """RFC 9728 metadata of `/mcp`: public, like any discovery document."""
    document: dict[str, object] = {
        "resource": resource_url(request.scope),
        "bearer_methods_supported": ["header"],
        "resource_name": "Todo API (MCP)",
    }
    servers = authorization_servers(request.app.state.settings)
    if servers:
        document["authorization_servers"] = servers
    return JSONResponse(document)
