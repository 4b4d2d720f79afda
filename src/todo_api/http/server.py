"""The HTTP/1.1 connection protocol `todo-api serve` runs: uvicorn's httptools protocol
with two limits on the part of a request that comes before the application sees it.

- **Header timeout.** A connection must deliver a request's complete head (request line
  and headers) within `HEADER_TIMEOUT_SECONDS` of the connection opening, or of the
  first byte of the next request on a kept-alive connection; otherwise it is closed. A
  client trickling a byte now and then can no longer hold a connection (and its memory)
  forever; uvicorn's own `timeout_keep_alive` only covers the idle time between
  requests, and any byte resets it.
- **Header size.** A request head larger than `MAX_HEADER_BYTES` is answered `431`
  without buffering more of it (the parser would otherwise keep accumulating an
  unfinished header value). The connection is then half-closed and whatever the client
  still sends is read and discarded until it closes (or the header timeout passes):
  closing with unread data would reset the connection and lose the 431.

Only the asyncio `Protocol` methods and httptools' parser callbacks
(`on_message_begin`, `on_headers_complete`) are extended, each calling uvicorn's own;
uvicorn loads the class through its documented `http` option.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from todo_api.config import Settings, get_settings
from todo_api.errors import AppError
from todo_api.http.problems import PROBLEM_JSON, problem_body


class HeadersTooLarge(AppError):
    status = 431
    code = "headers_too_large"
    detail = "The request line and headers are larger than this server accepts."


@dataclass(frozen=True)
class HeaderLimits:
    timeout_seconds: float
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderLimits:
        return cls(settings.header_timeout_seconds, settings.max_header_bytes)


def _too_large_response(max_bytes: int) -> bytes:
    error = HeadersTooLarge(f"The request line and headers exceed {max_bytes} bytes.")
    body = problem_body(error.status, error.code, error.detail, None)
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        f"content-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout and a header size cap."""

    #: Set on subclasses made by `header_limited`; otherwise read from the settings.
    limits: ClassVar[HeaderLimits | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_limits = self.limits or HeaderLimits.from_settings(get_settings())
        self.head_transport: asyncio.Transport | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        #: Bytes received since the current request head began, while it is incomplete.
        self.head_bytes = 0
        #: The last bytes of the previous read, in case the head's end straddles two.
        self.head_tail = b""
        self.reading_head = True
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_transport = transport
        self._start_head()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # discarded: the 431 has been sent
        if self.reading_head:
            # Counted before the parser sees the bytes, up to the blank line that ends the
            # head (which may straddle two reads).
            window = self.head_tail + data
            end = window.find(b"\r\n\r\n")
            if end < 0:
                self.head_bytes += len(data)
                self.head_tail = window[-3:]
            else:
                self.head_bytes += end + 4 - len(self.head_tail)
            if self.head_bytes > self.header_limits.max_bytes:
                self._refuse_head()
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_head:
            self._start_head()

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._stop_timer()
        super().on_headers_complete()

    def _start_head(self) -> None:
        self.reading_head = True
        self.head_bytes = 0
        self.head_tail = b""
        self._stop_timer()
        loop = asyncio.get_running_loop()
        self.head_timer = loop.call_later(self.header_limits.timeout_seconds, self._head_timeout)

    def _stop_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timeout(self) -> None:
        self.head_timer = None
        if self.reading_head and self.head_transport is not None:
            self.head_transport.close()

    def _refuse_head(self) -> None:
        transport = self.head_transport
        if transport is None or transport.is_closing():
            return
        self.refused = True
        transport.write(_too_large_response(self.header_limits.max_bytes))
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        # Still "reading the head" for the timer: it closes the connection if the client
        # keeps sending.
        self._start_head()


def header_limited(limits: HeaderLimits) -> type[HeaderLimitedProtocol]:
    """The protocol with these limits, for servers started in this process (uvicorn's
    `http=` option); `todo-api serve` names `HeaderLimitedProtocol`, which reads them
    from the settings in each worker."""
    return type("HeaderLimitedProtocol", (HeaderLimitedProtocol,), {"limits": limits})
