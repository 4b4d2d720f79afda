"""A per-request time limit that never interrupts a COMMIT.

Statement time is already bounded by the transaction's `statement_timeout`; this
bounds the whole request (pool waits, slow handlers) at a larger value. When the
limit passes, the request is cancelled and answered 503 — unless it is committing:
then the commit is allowed to finish, because cancelling it would leave the client
not knowing whether its write happened.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.http.problems import send_problem
from todo_api.http.response_state import response_state

#: Set in the request's state by the session dependency right before it commits.
COMMITTING = "committing"


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        state: dict[str, Any] = scope.setdefault("state", {})
        response, tracked = response_state(scope, send)
        timed_out = False
        handle: asyncio.TimerHandle | None = None

        def expire() -> None:
            nonlocal handle, timed_out
            if response.started:
                return  # the response is on its way; let it finish
            if state.get(COMMITTING):
                handle = loop.call_later(0.05, expire)  # check again once COMMIT is done
                return
            timed_out = True
            task.cancel()

        handle = loop.call_later(self.seconds, expire)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not timed_out:
                raise
            task.uncancel()  # the cancellation was ours and is handled here
            if not response.started:
                await send_problem(
                    scope,
                    tracked,
                    503,
                    "request_timeout",
                    "The request took too long and was abandoned; nothing was committed.",
                    {"Retry-After": "2"},
                )
        finally:
            if handle is not None:
                handle.cancel()
