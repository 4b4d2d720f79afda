"""One fan-out point per worker: which users have new changes, for all its streams.

A stream never polls by itself. It waits on its `Subscription`, which the hub wakes
when its user has committed a change (on any instance); the stream then reads the new
changes through the ordinary, row-level-secured feed query, from its own cursor. A
wake-up therefore only ever means "look again": a missed or extra one cannot lose or
invent a change, only delay or repeat a read.

How the hub learns of commits (`EVENTS_FANOUT`):

- `listen`: one connection per worker, held open, `LISTEN todo_api_changes`; a trigger
  on `changes` NOTIFYs the user id, delivered by PostgreSQL at commit. The connection
  is checked every few seconds; when it is lost the hub reconnects with back-off and,
  once back, wakes every stream, which catch up from their cursors.
- `poll`: every interval, one statement for all the worker's users
  (`todo_change_heads`), which wakes the users whose `change_seq` moved. Works through
  PgBouncer's transaction mode, where LISTEN cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from todo_api.db.database import CONNECTION_ERRORS, Database
from todo_api.db.urls import ConnectionPlan
from todo_api.errors import AppError, DatabaseUnavailable, ServiceUnavailable
from todo_api.events import redis_fanout

log = logging.getLogger("todo_api.events")

CHANNEL = "todo_api_changes"
#: How often the LISTEN connection is checked with a round trip.
HEALTH_INTERVAL = 5.0
_HEADS = "SELECT user_id, change_seq FROM todo_change_heads($1::text[])"


class TooManyStreams(AppError):
    status = 429
    code = "too_many_streams"


class StreamCapacity(ServiceUnavailable):
    code = "stream_capacity"


class Subscription:
    """One open stream's doorbell."""

    __slots__ = ("_bell", "hub", "user_id", "woken_at")

    def __init__(self, hub: EventHub, user_id: str) -> None:
        self.hub = hub
        self.user_id = user_id
        self._bell = asyncio.Event()
        #: Loop time of the first notification not yet handled (fan-out lag).
        self.woken_at: float | None = None

    def ring(self, at: float | None = None) -> None:
        if at is not None and self.woken_at is None:
            self.woken_at = at
        self._bell.set()

    async def wait(self, seconds: float) -> bool:
        """Whether the bell rang within `seconds` (and so: look again)."""
        if not self._bell.is_set():
            try:
                async with asyncio.timeout(max(seconds, 0.0)):
                    await self._bell.wait()
            except TimeoutError:
                return False
        self._bell.clear()
        return True

    def close(self) -> None:
        self.hub.remove(self)


class EventHub:
    """The worker's open streams and the one listener (or poller) that wakes them."""

    def __init__(
        self,
        *,
        mode: str,
        database: Database,
        listen_plan: ConnectionPlan | None,
        poll_interval: float,
        per_user: int,
        per_worker: int,
        observe_lag: Callable[[float], None] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.mode = mode
        self.database = database
        self.listen_plan = listen_plan
        self.poll_interval = poll_interval
        self.per_user = per_user
        self.per_worker = per_worker
        self.observe_lag = observe_lag
        self.streams: dict[str, set[Subscription]] = {}
        self.open_streams = 0
        #: True while the listener (or the poll) reaches the database.
        self.connected = False
        self.reconnects = 0
        self.closing = False
        self._task: asyncio.Task[None] | None = None
        #: Signal number -> (our handler, the one it chains to).
        self._handlers: dict[int, tuple[Any, Any]] = {}

    # Streams ------------------------------------------------------------------------

    def subscribe(self, user_id: str) -> Subscription:
        """Register a new stream, or refuse it over the per-user or per-worker cap."""
        if self.closing:
            raise StreamCapacity(
                "The server is shutting down; reconnect.", headers={"Retry-After": "1"}
            )
        mine = self.streams.setdefault(user_id, set())
        if len(mine) >= self.per_user:
            raise TooManyStreams(
                f"At most {self.per_user} event streams may be open per user; close one.",
                headers={"Retry-After": "10"},
            )
        if self.open_streams >= self.per_worker:
            raise StreamCapacity(
                "This server holds as many event streams as it may; retry shortly.",
                headers={"Retry-After": "5"},
            )
        subscription = Subscription(self, user_id)
        mine.add(subscription)
        self.open_streams += 1
        return subscription

    def remove(self, subscription: Subscription) -> None:
        mine = self.streams.get(subscription.user_id)
        if mine is None or subscription not in mine:
            return
        mine.discard(subscription)
        self.open_streams -= 1
        if not mine:
            del self.streams[subscription.user_id]

    def notify(self, user_id: str) -> None:
        """`user_id` committed a change: wake their streams."""
        subscriptions = self.streams.get(user_id)
        if subscriptions:
            now = asyncio.get_running_loop().time()
            for subscription in subscriptions:
                subscription.ring(now)

    def wake_all(self) -> None:
        for subscriptions in self.streams.values():
            for subscription in subscriptions:
                subscription.ring()

    def close_streams(self) -> None:
        """Shutdown: every stream ends at once (clients reconnect elsewhere)."""
        self.closing = True
        self.wake_all()

    # Life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        runners = {
            "listen": self._listen_forever,
            "poll": self._poll_forever,
            "redis": self._subscribe_forever,
        }
        runner = runners[self.mode]
        self._task = asyncio.create_task(runner(), name=f"events-{self.mode}")
        self._chain_signals()

    async def stop(self) -> None:
        self.close_streams()
        self._restore_signals()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _chain_signals(self) -> None:
        """End the streams as soon as SIGTERM/SIGINT arrive, before the server waits for
        open connections to finish (a stream never would). The server's own handler
        still runs. Only the main thread can install handlers."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
                with contextlib.suppress(RuntimeError):  # the loop has already closed
                    loop.call_soon_threadsafe(self.close_streams)
                if callable(previous):
                    previous(sig, frame)

            self._handlers[signum] = (handler, previous)
            signal.signal(signum, handler)

    def _restore_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, (handler, previous) in self._handlers.items():
            # Only if still ours: whoever replaced it since owns it now.
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)
        self._handlers.clear()

    def _up(self) -> None:
        was_down = not self.connected
        self.connected = True
        if was_down:
            log.info("events: %s listener connected", self.mode)
            # Whatever was committed while we could not hear it is read now.
            self.wake_all()

    def _down(self, error: BaseException | None) -> None:
        if self.connected:
            self.reconnects += 1
            log.warning(
                "events: %s listener lost (%s); reconnecting",
                self.mode,
                type(error).__name__ if error is not None else "closed",
            )
        self.connected = False

    # LISTEN/NOTIFY ------------------------------------------------------------------

    def _on_notify(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        self.notify(payload)

    async def _listen_forever(self) -> None:
        assert self.listen_plan is not None
        plan = self.listen_plan
        backoff = 0.5
        while True:
            connection: asyncpg.Connection | None = None
            error: BaseException | None = None
            try:
                connection = await asyncpg.connect(plan.dsn, **plan.driver_args)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notify)
                self._up()
                backoff = 0.5
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(HEALTH_INTERVAL):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(HEALTH_INTERVAL):
                            await connection.fetchval("SELECT 1")
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as failure:
                error = failure
            finally:
                if connection is not None:
                    connection.terminate()
            self._down(error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # Poll -----------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        heads: dict[str, int | None] = {}
        while True:
            await asyncio.sleep(self.poll_interval)
            users = list(self.streams)
            if not users:
                heads.clear()
                continue
            try:
                async with self.database.transaction("") as session:
                    rows = await session.connection.fetch(_HEADS, users)
            except (DatabaseUnavailable, *CONNECTION_ERRORS, asyncpg.PostgresError) as failure:
                self._down(failure)
                continue
            self._up()
            seen: dict[str, int | None] = {}
            for row in rows:
                user_id, seq = row["user_id"], row["change_seq"]
                seen[user_id] = seq
                # A user seen for the first time is woken too: the stream's first read
                # may have come just before a commit this poll already counts.
                if user_id not in heads or heads[user_id] != seq:
                    self.notify(user_id)
            heads = seen

    # Redis pub/sub ----------------------------------------------------------------------

    async def _subscribe_forever(self) -> None:
        assert self.redis_url is not None
        backoff = 0.5
        while True:
            client = Redis.from_url(
                self.redis_url, socket_timeout=HEALTH_INTERVAL * 2, socket_connect_timeout=5
            )
            error: BaseException | None = None
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(redis_fanout.CHANNEL)
                self._up()
                backoff = 0.5
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_INTERVAL)
                    if message is None:
                        await pubsub.ping()
                    elif message.get("type") == "message":
                        data = message["data"]
                        self.notify(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError, TimeoutError) as failure:
                error = failure
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()
            self._down(error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
