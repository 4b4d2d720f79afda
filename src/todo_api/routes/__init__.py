"""HTTP handlers, one module per resource."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from starlette.datastructures import URL

from todo_api.http.middleware import ALIAS


def spelled(request: Request, url: URL) -> str:
    """`url` (a path of this API) spelled like the request: a request that came by a
    short alias (`/api/tasks/...`) is answered with short URLs too."""
    if request.scope.get("state", {}).get(ALIAS) and url.path.startswith("/api/me/"):
        url = url.replace(path="/api/" + url.path[len("/api/me/") :])
    return str(url)


def object_url(request: Request, route_name: str, **ids: int) -> str:
    """The URL of an object just created, spelled like the request (`/api/me/...` stays so).

    Path parameters arrive decoded; they are encoded again so any user id makes a valid
    header value.
    """
    params = {name: quote(value, safe="") for name, value in request.path_params.items()}
    return spelled(request, request.url_for(route_name, **ids, **params))
