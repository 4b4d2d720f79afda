"""HTTP handlers, one module per resource."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request


def object_url(request: Request, route_name: str, **ids: int) -> str:
    """The URL of an object just created, spelled like the request (`/api/me/...` stays so).

    Path parameters arrive decoded; they are encoded again so any user id makes a valid
    header value.
    """
    params = {name: quote(value, safe="") for name, value in request.path_params.items()}
    return str(request.url_for(route_name, **ids, **params))
