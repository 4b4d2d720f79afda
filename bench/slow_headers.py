"""Slow and oversized request heads against a real server: is memory bounded, are other
clients still answered?

Starts the server (`todo-api serve`, or with `--server plain` bare uvicorn with its
httptools protocol, for comparison) on an embedded PostgreSQL in a temporary folder,
then for `--duration` seconds:

- `--slow` connections each send a request line and then one header byte per second,
  never finishing the head (slowloris);
- `--big` connections each send an unfinished header of `--big-mib` MiB;
- one client sends `GET /healthz` back to back and records each answer's latency.

It reports how many slow connections the server closed and after how long, the
server's resident memory (VmRSS) before, at its peak and at the end, and the other
client's answers. Linux only (it reads /proc).

    uv run python bench/slow_headers.py                  # todo-api serve
    uv run python bench/slow_headers.py --server plain   # bare uvicorn, no header limits
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn workers), in MiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def start_server(kind: str, port: int, data_dir: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JWT_SECRET": SECRET, "DATA_DIR": data_dir, "RATE_LIMIT_ENABLED": "false"}
    env.pop("DATABASE_URL", None)
    if kind == "serve":
        command = [sys.executable, "-m", "todo_api.cli", "serve", "--port", str(port)]
    else:
        command = [
            sys.executable, "-m", "uvicorn", "todo_api.main:create_app", "--factory",
            "--http", "httptools", "--port", str(port), "--no-access-log",
        ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            answer = await reader.read()
            writer.close()
            if answer.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready")


async def slow_client(port: int, duration: float, closed_after: list[float]) -> None:
    """Trickle a head one byte a second; note when the server closes the connection."""
    opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    eof = asyncio.ensure_future(reader.read())
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Slow: ")
        while time.monotonic() - opened < duration and not eof.done():
            writer.write(b"v")
            await asyncio.wait([eof], timeout=1.0)
        if eof.done():
            closed_after.append(time.monotonic() - opened)
    except OSError:
        closed_after.append(time.monotonic() - opened)
    finally:
        eof.cancel()
        writer.close()


async def big_client(port: int, mib: int, duration: float, outcome: list[str]) -> None:
    """Send an unfinished header of `mib` MiB, then hold the connection."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Big: ")
        chunk = b"v" * 65536
        for _ in range(mib * 16):
            writer.write(chunk)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), duration)
        outcome.append(answer.split(b"\r\n", 1)[0].decode() or "closed")
    except (OSError, TimeoutError) as error:
        outcome.append(type(error).__name__)


async def probe_client(
    port: int, duration: float, latencies: list[float], errors: list[str]
) -> None:
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() - start < duration:
        sent = time.monotonic()
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n", 1)[0].decode())
            latencies.append(time.monotonic() - sent)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            errors.append(type(error).__name__)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
    writer.close()


async def sample_memory(pid: int, duration: float, samples: list[float]) -> None:
    start = time.monotonic()
    while time.monotonic() - start < duration:
        samples.append(rss_mib(pid))
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="todo-api-bench-") as data_dir:
        process = start_server(args.server, port, data_dir)
        try:
            await wait_ready(port, process)
            before = rss_mib(process.pid)
            closed_after: list[float] = []
            big_outcomes: list[str] = []
            latencies: list[float] = []
            errors: list[str] = []
            memory: list[float] = []
            await asyncio.gather(
                sample_memory(process.pid, args.duration + 2, memory),
                probe_client(port, args.duration, latencies, errors),
                *(slow_client(port, args.duration, closed_after) for _ in range(args.slow)),
                *(
                    big_client(port, args.big_mib, args.duration, big_outcomes)
                    for _ in range(args.big)
                ),
            )
            after = rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        f"server: {args.server}; {args.slow} slow + {args.big} x {args.big_mib} MiB connections, {args.duration:.0f} s"
    )
    if closed_after:
        print(
            f"slow connections closed by the server: {len(closed_after)}/{args.slow}, "
            f"after {min(closed_after):.1f}-{max(closed_after):.1f} s "
            f"(median {statistics.median(closed_after):.1f} s)"
        )
    else:
        print(f"slow connections closed by the server: 0/{args.slow} (held for the whole run)")
    print(f"big-header connections: {', '.join(sorted(set(big_outcomes))) or '-'}")
    print(
        f"server memory (VmRSS): {before:.0f} MiB before, {max(memory):.0f} MiB peak, {after:.0f} MiB after"
    )
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"other client: {len(latencies)} answers, {len(errors)} errors, "
            f"median {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["serve", "plain"], default="serve")
    parser.add_argument("--slow", type=int, default=300, help="slowloris connections")
    parser.add_argument(
        "--big", type=int, default=4, help="connections sending a huge unfinished header"
    )
    parser.add_argument("--big-mib", type=int, default=16, help="size of each huge header")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
