"""A small Server-Sent Events reader over httpx streaming, for tests through real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

#: Only keeps a broken stream from hanging the run; no test asserts on time.
HANG_GUARD = 60.0


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.data)


class EventReader:
    """Reads `text/event-stream` lines into events (comments are kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None

    async def _next(self) -> Event | None:
        current = Event()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return current
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "retry":
                self.retry = int(value)
            elif name == "event":
                current.event, seen = value, True
            elif name == "id":
                current.id, seen = value, True
            elif name == "data":
                current.data, seen = (current.data + "\n" + value if current.data else value), True
        return None

    async def next(self) -> Event | None:
        """The next event, or None when the server ends the stream."""
        return await asyncio.wait_for(self._next(), HANG_GUARD)

    async def changes(self, count: int) -> list[Event]:
        """The next `count` events, which must all be changes."""
        found = []
        while len(found) < count:
            event = await self.next()
            assert event is not None, f"the stream ended after {found}"
            assert event.event == "change", event
            found.append(event)
        return found


@asynccontextmanager
async def open_stream(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[EventReader]:
    async with http.stream("GET", url, headers=headers or {}) as response:
        yield EventReader(response)
