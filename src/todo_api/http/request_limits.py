"""Limits on the shape of a request, checked before routing: query-string size and
parameter count, the encoding of JSON bodies, and their nesting depth.

JSON bodies must be UTF-8 (RFC 8259, section 8.1: JSON exchanged between systems that are
not part of a closed ecosystem MUST be UTF-8). The parser behind FastAPI would also
decode UTF-16 and UTF-32, and a check that reads bytes as UTF-8 (the depth limit here)
would then count something else than what gets parsed; so such bodies are refused (415
`json_not_utf8`) before anything reads them. UTF-8 JSON never contains a zero byte (a
U+0000 must be written `\u0000`), while UTF-16 and UTF-32 JSON always does (every JSON
text holds an ASCII character, and its code unit has a zero byte), with or without a
byte-order mark: a zero byte tells them apart. (Bytes without one that the parser would
read as UTF-16 can hold no ASCII character, so they never parse as JSON.) A UTF-8
byte-order mark is allowed (RFC 8259 lets parsers ignore it).

Body *size* is `BodyLimitMiddleware`'s job (it runs earlier and also bounds what this
layer buffers); page sizes and string lengths are declared on the schemas.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.http.problems import PROBLEM_JSON, problem_body

MAX_JSON_DEPTH = 32
MAX_QUERY_BYTES = 8192
MAX_QUERY_PARAMS = 50

# A JSON string, escapes included: its brackets are text, not structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Map both kinds of bracket to one kind and drop every other byte: only nesting matters.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_not_utf8(body: bytes) -> bool:
    """Whether a JSON body is in another encoding than UTF-8 (UTF-16 or UTF-32, with or
    without a byte-order mark)."""
    return b"\x00" in body


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `body` nests arrays/objects deeper than `limit`.

    Runs at C speed: strings are cut out, then one bracket level is peeled per round
    with `bytes.replace`, at most `limit` rounds. Brackets that do not pair up are left
    for the JSON parser to refuse; they are not counted as depth.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    skeleton = _JSON_STRING.sub(b"", body).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        peeled = skeleton.replace(b"[]", b"")
        if len(peeled) == len(skeleton):
            return False
        skeleton = peeled
    return b"[]" in skeleton


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    # FastAPI parses a body without a Content-Type as JSON too.
    return True


async def _send_problem(scope: Scope, send: Send, status: int, code: str, detail: str) -> None:
    state = scope.get("state", {})
    body = problem_body(status, code, detail, state.get("request_id"))
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    """Refuses oversized query strings (414/422), JSON bodies that are not UTF-8 (415)
    and over-deep ones (422).

    It is the innermost layer, so authentication (401), rate limits (429) and the
    path-owner check (403) are decided first. A JSON body is read here in full (it is
    already bounded by the body-size limit), checked, and replayed to the application.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_depth: int = MAX_JSON_DEPTH,
        max_query_bytes: int = MAX_QUERY_BYTES,
        max_query_params: int = MAX_QUERY_PARAMS,
    ) -> None:
        self.app = app
        self.max_json_depth = max_json_depth
        self.max_query_bytes = max_query_bytes
        self.max_query_params = max_query_params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            await _send_problem(
                scope,
                send,
                414,
                "query_too_long",
                f"The query string exceeds {self.max_query_bytes} bytes.",
            )
            return
        if query and query.count(b"&") + 1 > self.max_query_params:
            await _send_problem(
                scope,
                send,
                422,
                "too_many_query_parameters",
                f"The query string has more than {self.max_query_params} parameters.",
            )
            return
        if scope["method"] not in _BODY_METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: hand the disconnect on untouched.
                await self.app(scope, _replay(message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_not_utf8(body):
            await _send_problem(
                scope,
                send,
                415,
                "json_not_utf8",
                "A JSON body must be encoded in UTF-8 (RFC 8259).",
            )
            return
        if json_depth_exceeds(body, self.max_json_depth):
            await _send_problem(
                scope,
                send,
                422,
                "json_too_deep",
                f"The JSON body nests deeper than {self.max_json_depth} levels.",
            )
            return
        replayed: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay(replayed, receive), send)


def _replay(first: Message, receive: Receive) -> Receive:
    """A `receive` that returns `first` once, then defers to the real one."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
