"""Event streams at scale: N open streams on one worker of instance B, writes through
instance A.

Reports B's memory per open stream (RSS after opening them minus before, divided by
N), B's CPU while the streams sit idle, and the delay from a write committed on A to
its event on B, while all N streams are open. Both instances are `todo-api serve
--workers 1` on one throwaway database.

    uv run python bench/events.py                 # 1,000 streams, 200 writes
    uv run python bench/events.py --streams 200 --writes 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import jwt

SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"
DB = "todo_events_bench"
#: Events not yet arrived that a writer waits for, by task id.
waiters: dict[int, asyncio.Future[None]] = {}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token(user: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, url: str, extra: dict[str, str]) -> None:
        self.port = _port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": SECRET,
            "RATE_LIMIT_ENABLED": "false",
            "EVENTS_MAX_STREAMS_PER_WORKER": "100000",
            **extra,
        }
        command = [sys.executable, "-m", "todo_api.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def ready(self) -> None:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"{self.base}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


async def _database(admin_url: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB}")
    finally:
        await conn.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{DB}"
    migrate = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "todo_api.cli",
        "migrate",
        env={**os.environ, "DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
    )
    assert await migrate.wait() == 0, "migration failed"
    return url


async def _stream(
    http: httpx.AsyncClient,
    base: str,
    user: str,
    opened: asyncio.Event,
    arrivals: dict[int, float],
    counter: list[int],
    total: int,
) -> None:
    headers = {"Authorization": f"Bearer {_token(user)}"}
    async with http.stream("GET", f"{base}/api/me/events", headers=headers) as response:
        assert response.status_code == 200, response.status_code
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if event == "ready":
                    counter[0] += 1
                    if counter[0] == total:
                        opened.set()
            elif line.startswith("data: ") and event == "change":
                task_id = int(line.split('"id":', 1)[1].split(",", 1)[0])
                arrivals[task_id] = time.perf_counter()
                waiter = waiters.pop(task_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--fanout", default="listen", choices=["listen", "poll"])
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    url = await _database(args.admin_url)
    a = Server(url, {})
    b = Server(url, {"EVENTS_FANOUT": args.fanout})
    try:
        await asyncio.gather(a.ready(), b.ready())
        users = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(args.streams)]
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=None), limits=limits) as http:
            # Warm B up (imports, first requests, pool) before measuring its baseline.
            for user in users[:20]:
                await http.get(
                    f"{b.base}/api/me/changes", headers={"Authorization": f"Bearer {_token(user)}"}
                )
            await asyncio.sleep(2)
            rss_before = _rss_bytes(b.process.pid)
            opened = asyncio.Event()
            arrivals: dict[int, float] = {}
            counter = [0]
            tasks = [
                asyncio.create_task(
                    _stream(http, b.base, user, opened, arrivals, counter, len(users))
                )
                for user in users
            ]
            await asyncio.wait_for(opened.wait(), 300)
            await asyncio.sleep(3)
            rss_after = _rss_bytes(b.process.pid)

            cpu_start, wall_start = _cpu_seconds(b.process.pid), time.perf_counter()
            await asyncio.sleep(args.idle_seconds)
            idle_cpu = (_cpu_seconds(b.process.pid) - cpu_start) / (
                time.perf_counter() - wall_start
            )

            from_ack: list[float] = []
            from_send: list[float] = []
            for n in range(args.writes):
                user = users[(n * 7919) % len(users)]
                headers = {"Authorization": f"Bearer {_token(user)}"}
                sent = time.perf_counter()
                response = await http.post(
                    f"{a.base}/api/me/tasks", json={"title": f"w{n}"}, headers=headers
                )
                acked = time.perf_counter()
                task_id = response.json()["id"]
                if task_id not in arrivals:
                    waiter = waiters[task_id] = asyncio.get_running_loop().create_future()
                    await asyncio.wait_for(waiter, 60)
                from_send.append(arrivals[task_id] - sent)
                from_ack.append(max(0.0, arrivals[task_id] - acked))
                await asyncio.sleep(0.05)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        a.stop()
        b.stop()

    def pct(values: list[float], q: float) -> float:
        return (
            statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000
            if len(values) > 1
            else values[0] * 1000
        )

    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"fan-out: {args.fanout}; streams open on B: {args.streams}; writes on A: {args.writes}")
    print(
        f"B memory per stream: {(rss_after - rss_before) / args.streams / 1024:.1f} KiB (RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB)"
    )
    print(
        f"B idle CPU with the streams open: {idle_cpu * 100:.2f}% of one core over {args.idle_seconds:.0f} s"
    )
    print(
        f"write on A -> event on B, from the 201: p50 {pct(from_ack, 50):.1f} ms, p99 {pct(from_ack, 99):.1f} ms"
    )
    print(
        f"write on A -> event on B, from sending the POST: p50 {pct(from_send, 50):.1f} ms, p99 {pct(from_send, 99):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
