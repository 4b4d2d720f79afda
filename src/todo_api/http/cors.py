"""CORS for the configured frontend origins only, with refusals as problem+json."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from todo_api.http.problems import PROBLEM_JSON, problem_body
from todo_api.http.response_state import response_state


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS layer, except that a refused preflight is an RFC 9457 document
    (like every other error of this API) instead of a bare `text/plain` 400.

    Wildcard origins are refused by `Settings`, and credentials are never allowed (the
    API takes bearer tokens, not cookies), so `Access-Control-Allow-Origin` only ever
    names one configured origin.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(name == b"origin" for name, _ in scope["headers"]):
            # Not a browser's cross-origin request: only `Vary: Origin` to add, as the
            # parent class does, without building its header objects per response (the
            # one `send` wrapper adds it).
            shared, tracked = response_state(scope, send)
            shared.vary_origin = True
            await self.app(scope, receive, tracked)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
                    request_id = scope.get("state", {}).get("request_id")
                    body = problem_body(
                        400,
                        "cors_refused",
                        f"This cross-origin request is not allowed ({refused}).",
                        request_id,
                    )
                    raw = [
                        (k, v)
                        for k, v in response.raw_headers
                        if k not in {b"content-type", b"content-length"}
                    ]
                    raw += [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ]
                    await send({"type": "http.response.start", "status": 400, "headers": raw})
                    await send({"type": "http.response.body", "body": body})
                    return
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
