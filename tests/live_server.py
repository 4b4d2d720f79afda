"""A real uvicorn server on a free loopback port, in a thread with its own event loop.

For tests that need real HTTP parsing (chunked bodies, huge headers, proxy headers) or
a synchronous client (the fuzzer). The app's lifespan runs in the server's loop, so its
engine and connections never cross event loops. Unless a test names another, the
connection protocol is the one `todo-api serve` runs, with the app's header limits.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from todo_api.http.server import HeaderLimits, header_limited

_START_TIMEOUT = 30.0


@contextmanager
def serve(app: FastAPI, **config: Any) -> Iterator[str]:
    """Run `app` under uvicorn until the block ends; yields its base URL."""
    # Binding here (port 0) and handing uvicorn the socket leaves no window in which
    # another process could take the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "http": header_limited(HeaderLimits.from_settings(app.state.settings)),
        **config,
    }
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    # Waiting for start-up is not a timed assertion: the deadline only turns a server
    # that never starts into a clear error instead of a hung test run.
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
