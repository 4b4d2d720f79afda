"""`Idempotency-Key` on POST (draft-ietf-httpapi-idempotency-key-header).

`IdempotencyDep` claims the key before the handler runs, in the request's transaction
(`services/idempotency.py` explains the locking); `IdempotentRoute` stores the handler's
response in that same transaction before it commits, and turns a replay into the stored
response. An error raised by the handler rolls the claim back with everything else, so
a retry of a failed request runs again.

The key is a Structured Field string (`"8e03978e-..."`, as the draft specifies); a bare
token is accepted too. 1–255 printable ASCII characters. The fingerprint that must
match on a retry is the method, the route, its ids, the query and the exact body bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from todo_api.db.database import Session
from todo_api.deps import ContextDep, ContextRoute
from todo_api.errors import Unprocessable
from todo_api.services import idempotency as service

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
_CLAIM = "idempotency_claim"
#: Response headers that belong to the stored response (the rest are per delivery).
_KEPT_HEADERS = ("content-type", "location", "etag")


def parse_key(raw: str) -> str:
    """The key inside the header value, or 422."""
    value = raw.strip()
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(value) <= 255 or not all(" " <= ch <= "~" for ch in value):
        raise Unprocessable(
            "`Idempotency-Key` must be 1–255 printable ASCII characters.",
            code="idempotency_key_invalid",
        )
    return value


async def fingerprint(request: Request) -> str:
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path).replace("/{user_id}", "")
    ids = sorted((k, v) for k, v in request.path_params.items() if k != "user_id")
    digest = hashlib.sha256()
    for part in (request.method, template, repr(ids), request.url.query):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(await request.body())
    return digest.hexdigest()


@dataclass(frozen=True)
class Claim:
    session: Session
    user_id: str
    key: str

    async def store(self, response: Response) -> None:
        headers = {
            name: response.headers[name] for name in _KEPT_HEADERS if name in response.headers
        }
        await service.store(
            self.session,
            self.user_id,
            self.key,
            response.status_code,
            headers,
            bytes(response.body),
        )


class _Replay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__("replay")


async def claim_key(
    request: Request,
    ctx: ContextDep,
    key: Annotated[
        str | None,
        Header(
            alias=KEY_HEADER,
            max_length=257,
            pattern=r"^[\x20-\x7e]+$",
            description="Makes a retry safe: the first response is stored (24 h by "
            "default) and a retry with the same key and body gets it again, with "
            "`Idempotency-Replayed: true`. Same key, other body: 422 "
            "`idempotency_key_reused`; while the first is still running: 409 "
            "`idempotency_in_progress`.",
            examples=['"5b0c8a7e-9f1d-4f5a-8a61-3c2e4d7f9b10"'],
        ),
    ] = None,
) -> None:
    """Claim the request's `Idempotency-Key`, or answer with what is stored under it."""
    if key is None:
        return
    value = parse_key(key)
    digest = await fingerprint(request)
    settings = ctx.settings
    stored = await service.claim(
        ctx.session,
        ctx.user_id,
        value,
        digest,
        settings.idempotency_ttl_hours,
        settings.changes_retention_days,
    )
    if stored is None:
        request.scope["state"][_CLAIM] = Claim(ctx.session, ctx.user_id, value)
        return
    if stored.request_hash != digest:
        raise Unprocessable(
            "This Idempotency-Key was used for a different request; use a new key.",
            code="idempotency_key_reused",
        )
    if stored.status is None:
        raise service.in_progress()
    headers = {**stored.headers, REPLAYED_HEADER: "true"}
    raise _Replay(Response(stored.body, status_code=stored.status, headers=headers))


IdempotencyDep = Depends(claim_key)


class IdempotentRoute(ContextRoute):
    """Stores the response of a request that claimed a key; answers replays."""

    def transactional_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().transactional_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return replay.response
            claim = request.scope.get("state", {}).pop(_CLAIM, None)
            if isinstance(claim, Claim):
                # Inside the request's transaction (`ContextRoute`): it commits after this.
                await claim.store(response)
            return response

        return run
