"""One `send` wrapper for the whole middleware stack.

Several layers need to know whether the response has started (to answer an error
themselves only if not) or want headers added to it. Each wrapping `send` for that costs
two extra coroutine calls per request and layer; instead they share a `ResponseState` in
the request's state, kept by the outermost layer's wrapper.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Scope, Send


class ResponseState:
    """The response as the layers inside `RequestContextMiddleware` see it, shared through
    the request's state so that one `send` wrapper (the outermost layer's) serves them
    all: whether it has started, its status, and headers inner layers want added
    (`RateLimit-*`, `Vary: Origin`). Without the outer layer (a partial stack), a layer
    that needs it tracks the response with a wrapper of its own (`response_state`).
    """

    __slots__ = ("extra_headers", "started", "status", "vary_origin")

    def __init__(self) -> None:
        self.started = False
        self.status = 500
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.vary_origin = False

    def start(self, message: Message) -> list[tuple[bytes, bytes]]:
        """Record `http.response.start`; its headers with what inner layers asked for."""
        self.started = True
        self.status = message["status"]
        return self.apply(list(message.get("headers") or ()))

    def apply(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """`headers` with what inner layers asked for added (before the outer layer's own)."""
        if self.extra_headers:
            headers = [*headers, *self.extra_headers]
        if self.vary_origin:
            vary = [value for name, value in headers if name == b"vary"]
            if vary:
                headers = [header for header in headers if header[0] != b"vary"]
            headers = [*headers, (b"vary", b", ".join([*vary, b"Origin"]))]
        return headers


RESPONSE = "response"


def response_state(scope: Scope, send: Send) -> tuple[ResponseState, Send]:
    """The request's `ResponseState` and the `send` to use with it: `send` itself under
    `RequestContextMiddleware`, else a wrapper that keeps a new state up to date."""
    state: dict[str, Any] = scope.setdefault("state", {})
    shared: ResponseState | None = state.get(RESPONSE)
    if shared is not None:
        return shared, send
    own = ResponseState()
    state[RESPONSE] = own

    async def tracking(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = own.start(message)
        await send(message)

    return own, tracking
