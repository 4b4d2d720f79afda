"""A circuit breaker for the database connection.

After a connection failure, requests are answered with 503 at once instead of each
one waiting for its own connect timeout; a single background probe reconnects and
closes the circuit when the database answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("todo_api.db")


class CircuitBreaker:
    """Two states: `closed` (normal) and `open` (failing fast while one probe retries)."""

    def __init__(
        self, probe: Callable[[], Awaitable[None]], *, interval: float = 1.0, timeout: float = 3.0
    ) -> None:
        self._probe = probe
        self.interval = interval
        self.timeout = timeout
        self.state = "closed"
        self.opened_at: float | None = None
        self.trips = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def trip(self) -> None:
        """Record a connection failure: open the circuit and start the probe."""
        if self.state == "open":
            return
        self.state = "open"
        self.opened_at = time.monotonic()
        self.trips += 1
        log.warning("database unreachable: circuit open, probing for recovery")
        self._task = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while self.state == "open":
            try:
                await asyncio.wait_for(self._probe(), timeout=self.timeout)
            except Exception:  # any failure means "still down"
                await asyncio.sleep(self.interval)
                continue
            down_for = time.monotonic() - (self.opened_at or time.monotonic())
            self.state = "closed"
            self.opened_at = None
            log.warning("database reachable again after %.1f s: circuit closed", down_for)

    async def close(self) -> None:
        """Stop probing (on shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
