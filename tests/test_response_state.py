"""The one `send` wrapper: layers share the response's state through the request, and
still work alone (a partial stack tracks the response with a wrapper of its own)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from todo_api.http.middleware import BodyLimitMiddleware, ErrorSafetyNetMiddleware
from todo_api.http.response_state import RESPONSE, ResponseState, response_state


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/x", "headers": [], "state": {}}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class _Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


async def _start_then_fail(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("after the start")


async def _fail(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("before the start")


async def test_a_layer_alone_answers_500_before_the_response_started() -> None:
    sink = _Sink()
    await ErrorSafetyNetMiddleware(_fail)(_scope(), _receive, sink)
    assert sink.messages[0]["status"] == 500
    assert orjson.loads(sink.messages[1]["body"])["code"] == "internal_error"


async def test_a_layer_alone_knows_when_the_response_already_started() -> None:
    sink = _Sink()
    scope = _scope()
    with pytest.raises(RuntimeError, match="after the start"):
        await ErrorSafetyNetMiddleware(_start_then_fail)(scope, _receive, sink)
    assert [m["type"] for m in sink.messages] == ["http.response.start"]
    assert scope["state"][RESPONSE].started


async def test_nested_layers_share_the_outer_layers_tracking() -> None:
    sink = _Sink()
    scope = _scope()
    sends: dict[str, Send] = {}

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        sends["inner"] = send
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    body_limit = BodyLimitMiddleware(inner, max_bytes=10)

    async def between(scope: Scope, receive: Receive, send: Send) -> None:
        sends["between"] = send
        await body_limit(scope, receive, send)

    await ErrorSafetyNetMiddleware(between)(scope, _receive, sink)
    shared: ResponseState = scope["state"][RESPONSE]
    assert shared.started and shared.status == 201
    assert sends["between"] is not sink  # the outer layer tracks with its own wrapper
    assert sends["inner"] is sends["between"]  # and the inner one adds none


async def test_added_headers_and_vary_are_merged_into_the_response() -> None:
    sink = _Sink()
    shared, send = response_state({"state": {}}, sink)
    shared.extra_headers.append((b"ratelimit-limit", b"60"))
    shared.vary_origin = True
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"vary", b"Accept-Encoding"), (b"content-type", b"text/plain")],
        }
    )
    headers = sink.messages[0]["headers"]
    assert (b"ratelimit-limit", b"60") in headers
    assert [value for name, value in headers if name == b"vary"] == [b"Accept-Encoding, Origin"]
