"""A TCP proxy between the app and PostgreSQL that a test can cut, slow down and restore."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class FaultProxy:
    """Forwards 127.0.0.1:<port> to the database of a libpq URL (TCP or Unix socket)."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        query = dict(parse_qsl(parts.query))
        self._socket_dir = query.get("host") if not parts.hostname else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5432
        self._target = parts
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.delay = 0.0
        self.port = 0

    @property
    def url(self) -> str:
        """The target URL, rewritten to go through the proxy."""
        query = {k: v for k, v in parse_qsl(self._target.query) if k != "host"}
        userinfo = self._target.netloc.rsplit("@", 1)[0] + "@" if "@" in self._target.netloc else ""
        netloc = f"{userinfo}127.0.0.1:{self.port}"
        return urlunsplit((self._target.scheme, netloc, self._target.path, urlencode(query), ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop every open one, like a database that vanished."""
        server, self._server = self._server, None
        if server is not None:
            server.close()  # stops listening; open connections stay up
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            # Since Python 3.12 this waits for every connection the server accepted, so
            # only once they are aborted.
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._socket_dir:
            return await asyncio.open_unix_connection(f"{self._socket_dir}/.s.PGSQL.{self._port}")
        return await asyncio.open_connection(self._host, self._port)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        try:
            upstream_r, upstream_w = await self._open_upstream()
        except OSError:
            self._writers.discard(client_w)
            client_w.transport.abort()
            return
        if client_w not in self._writers:  # cut while connecting upstream
            upstream_w.transport.abort()
            client_w.transport.abort()
            return
        self._writers.add(upstream_w)
        await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        self._writers.difference_update({client_w, upstream_w})

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
