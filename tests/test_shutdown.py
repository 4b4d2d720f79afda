"""Graceful shutdown and several instances, with real server processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import TEST_SECRET, count_tasks, make_token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`todo-api serve` on a free loopback port against the test database."""

    def __init__(self, database_url: str, **extra_env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "JWT_SECRET": TEST_SECRET,
            "RATE_LIMIT_ENABLED": "false",
            **extra_env,
        }
        command = [sys.executable, "-m", "todo_api.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(  # noqa: S603
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def wait_ready(self) -> ServerProcess:
        # Not a timed assertion: the deadline only turns a server that never starts into
        # an error. Generous, as start-up imports take seconds on a busy machine.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def server(owner_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(owner_url).wait_ready()
    try:
        yield process
    finally:
        process.stop()


async def test_sigterm_during_a_burst_keeps_every_acknowledged_write(
    server: ServerProcess, owner_conn: asyncpg.Connection
) -> None:
    user = "shutdown-user"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    created = 0
    first_acknowledged = asyncio.Event()

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def write(i: int) -> None:
            nonlocal created
            try:
                response = await http.post(
                    "/api/me/tasks", json={"title": f"t{i}"}, headers=headers
                )
            except httpx.TransportError:
                return  # refused or cut before it was acknowledged: nothing was promised
            assert response.status_code in {201, 503}, response.text
            if response.status_code == 201:
                created += 1
                first_acknowledged.set()

        burst = [asyncio.create_task(write(i)) for i in range(60)]
        # The signal lands while the burst is in flight: after its first write is
        # acknowledged (on a slow machine a fixed delay could come before any request
        # had even reached the server), with the rest still queued or running.
        await asyncio.wait_for(first_acknowledged.wait(), timeout=20)
        server.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*burst)

    assert server.stop() == 0
    assert created > 0
    assert await count_tasks(owner_conn, user) == created


async def test_two_instances_share_everything(owner_url: str) -> None:
    first, second = ServerProcess(owner_url), ServerProcess(owner_url)
    headers = {"Authorization": f"Bearer {make_token('two-instances')}"}
    try:
        first.wait_ready()
        second.wait_ready()
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            created = await http.post(f"{first.url}/api/me/tasks", json={"title": "from one"})
            task_id = created.json()["id"]
            read = await http.get(f"{second.url}/api/me/tasks/{task_id}")
            patched = await http.patch(
                f"{second.url}/api/me/tasks/{task_id}", json={"title": "from two"}
            )
            seen = await http.get(f"{first.url}/api/me/tasks/{task_id}")
            deleted = await http.delete(f"{second.url}/api/me/tasks/{task_id}")
            gone = await http.get(f"{first.url}/api/me/tasks/{task_id}")
    finally:
        first.stop()
        second.stop()
    assert created.status_code == 201
    assert read.json()["title"] == "from one"
    assert patched.status_code == 200
    assert seen.json()["title"] == "from two"
    assert deleted.status_code == 200
    assert gone.status_code == 404
