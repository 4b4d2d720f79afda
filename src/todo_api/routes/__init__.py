"""HTTP handlers, one module per resource."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from starlette.datastructures import URL

from todo_api.http.middleware import ALIAS

#: Where every resource route lives: `{user_id}` is the token's `sub` or `me`, checked
#: (and the short aliases mapped to `/api/me/...`) before routing, by `PathUserMiddleware`.
API_PREFIX = "/api/{user_id}"


def spelled(request: Request, url: URL) -> str:
    """`url` (a path of this API) as a relative reference spelled like the request: a
    request that came by a short alias (`/api/tasks/...`) is answered with short URLs.

    Relative, so no URL depends on the request's `Host` or scheme (which a client or a
    proxy outside `FORWARDED_ALLOW_IPS` controls)."""
    path = url.path
    if request.scope.get("state", {}).get(ALIAS) and path.startswith("/api/me/"):
        path = "/api/" + path[len("/api/me/") :]
    return path + ("?" + url.query if url.query else "")


def here(request: Request) -> URL:
    """The request's own path and query, as a relative URL (the path encoded again: it
    arrives decoded, and any user id must make a valid header)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return URL(quote(request.scope["path"]) + ("?" + query if query else ""))


def object_url(request: Request, route_name: str, **ids: int) -> str:
    """The URL of an object just created, spelled like the request (`/api/me/...` stays so).

    Path parameters arrive decoded; they are encoded again so any user id makes a valid
    header value.
    """
    params = {name: quote(value, safe="") for name, value in request.path_params.items()}
    return spelled(request, URL(str(request.app.url_path_for(route_name, **ids, **params))))
