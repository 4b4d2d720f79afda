"""Fan-out through Redis pub/sub (`EVENTS_FANOUT=redis`, or `auto` with `REDIS_URL`).

Writers publish the user id on `todo-api:changes` once their transaction has committed
(`ChangePublisher`: a write answered 2xx has committed, see `deps.ContextRoute`); each
worker subscribes once. Redis pub/sub keeps nothing for a subscriber that is away, so
a lost subscription is treated like a lost LISTEN: on reconnect every stream reads
from its cursor.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.auth.principal import Principal

log = logging.getLogger("todo_api.events")

CHANNEL = "todo-api:changes"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ChangePublisher:
    """After a successful write to `/api`, publishes the caller's id (not awaited by the
    response: a lost publish delays that user's events until their next change or the
    next reconnect; it never fails the write)."""

    def __init__(self, app: ASGIApp, *, redis_url: str) -> None:
        self.app = app
        self.redis = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self._pending: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return

        async def publish_after(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                principal = scope.get("state", {}).get("principal")
                if isinstance(principal, Principal):
                    task = asyncio.create_task(self._publish(principal.user_id))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)

        await self.app(scope, receive, publish_after)

    async def _publish(self, user_id: str) -> None:
        try:
            await self.redis.publish(CHANNEL, user_id)
        except (RedisError, OSError) as error:
            log.warning("events: publishing to Redis failed (%s)", type(error).__name__)
