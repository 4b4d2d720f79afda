"""A per-request time limit that never interrupts a COMMIT.

Statement time is already bounded by the transaction's `statement_timeout`; this
bounds the whole request (pool waits, slow handlers) at a larger value. When the
limit passes, the request is cancelled and answered 503 — unless it is committing:
then the commit is allowed to finish, because cancelling it would leave the client
not knowing whether its write happened.

One watchdog per event loop keeps every request's deadline and wakes a few times per
limit while requests are in flight, rather than a timer per request (starting and
cancelling an event-loop timer costs more than the rest of this layer): a request is
abandoned between its limit and a quarter of a limit (at most half a second) later.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.http.problems import send_problem
from todo_api.http.response_state import ResponseState, response_state

#: Set in the request's state by the route right before it commits.
COMMITTING = "committing"


class _Deadline:
    """One request in flight: its task, when it is due, and what it has got to."""

    __slots__ = ("due", "response", "state", "task", "timed_out")

    def __init__(
        self, task: asyncio.Task[Any], due: float, state: dict[str, Any], response: ResponseState
    ) -> None:
        self.task = task
        self.due = due
        self.state = state
        self.response = response
        self.timed_out = False


class _Watchdog:
    """The deadlines of one event loop's requests, checked every `interval` seconds
    while there are any."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.pending: set[_Deadline] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, deadline: _Deadline) -> None:
        self.pending.add(deadline)
        if self.timer is None:
            self.timer = self.loop.call_later(self.interval, self.check)

    def check(self) -> None:
        now = self.loop.time()
        for deadline in [d for d in self.pending if d.due <= now]:
            if deadline.response.started:
                self.pending.discard(deadline)  # the response is on its way; let it finish
            elif not deadline.state.get(COMMITTING):
                # (A committing request is looked at again on the next check.)
                self.pending.discard(deadline)
                deadline.timed_out = True
                deadline.task.cancel()
        self.timer = self.loop.call_later(self.interval, self.check) if self.pending else None


class RequestTimeoutMiddleware:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.interval = min(0.5, seconds / 4)
        self._watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
            weakref.WeakKeyDictionary()
        )

    def _watchdog(self) -> _Watchdog:
        loop = asyncio.get_running_loop()
        watchdog = self._watchdogs.get(loop)
        if watchdog is None:
            watchdog = self._watchdogs[loop] = _Watchdog(loop, self.interval)
        return watchdog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        watchdog = self._watchdog()
        state: dict[str, Any] = scope.setdefault("state", {})
        response, tracked = response_state(scope, send)
        deadline = _Deadline(task, watchdog.loop.time() + self.seconds, state, response)
        watchdog.add(deadline)
        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not deadline.timed_out:
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
            watchdog.pending.discard(deadline)
