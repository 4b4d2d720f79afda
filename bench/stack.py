"""CPU per request of the API's middleware stack alone, in-process (no HTTP, no database).

`GET /api/me/tasks/{id}` goes through every production layer (request context and
access log, CORS, error safety net, body limit, authentication, rate limit, path owner,
time limit, request limits, hot path), but the hot path's database work is replaced by
a fixed task read once at start-up, so what is timed is the stack itself. `--without`
drops layers by class name, to see what each costs. Each configuration runs in a fresh
process; the best of `--repeat` runs is reported (the least disturbed by other work).

    uv run python bench/stack.py                          # the full stack
    uv run python bench/stack.py --each                   # the full stack, then without each layer

Needs the benchmark's database, seeded (`bench/run.py` leaves it in place), and its
users file with tokens (`bench/results/users-default.tsv`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SECRET = "bench-only-jwt-secret-not-for-production-0123456789"
URL = "postgresql://todo_bench_owner@127.0.0.1:5432/todo_bench"
LAYERS = (
    "RequestContextMiddleware",
    "ProblemCORSMiddleware",
    "ErrorSafetyNetMiddleware",
    "BodyLimitMiddleware",
    "AuthenticationMiddleware",
    "RateLimitMiddleware",
    "PathUserMiddleware",
    "RequestTimeoutMiddleware",
    "RequestLimitsMiddleware",
)


async def measure(
    without: set[str], requests: int, users: list[list[str]], url: str, sink: Any
) -> float:
    """Microseconds per request through the stack (one process, one configuration)."""
    os.environ.update(
        TODO_API_ENV="production",
        JWT_SECRET=SECRET,
        DATABASE_URL=url,
        DOCS_ENABLED="false",
        CORS_ORIGINS="https://app.example.com",
        RATE_LIMIT_PER_MINUTE="1000000",
    )
    from todo_api.hotpath import HotPathMiddleware
    from todo_api.observability.logs import configure_logging
    from todo_api.main import create_app
    from todo_api.http.responses import task_response
    from todo_api.services import tasks as service

    configure_logging()
    # The access log is written as in production, to a sink that costs no disk I/O.
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sink)
    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ not in without]
    async with app.router.lifespan_context(app):
        async with app.state.database.driver_session(users[0][1]) as session:
            row = await service.get_task(session, users[0][1], int(users[0][3]))

        async def stub(self: Any, call: Any, work: Any, *, lean: bool = False) -> None:
            response = task_response(row, headers={"ETag": '"1"'})
            await response(call.scope, call.receive, call.send)

        HotPathMiddleware._answer = stub  # type: ignore[method-assign]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"status {message['status']}")

        async def run(count: int) -> None:
            for i in range(count):
                user = users[i % len(users)]
                path = f"/api/me/tasks/{user[3]}"
                scope = {
                    "type": "http",
                    "method": "GET",
                    "path": path,
                    "raw_path": path.encode(),
                    "query_string": b"",
                    "headers": [
                        (b"host", b"bench"),
                        (b"authorization", f"Bearer {user[2]}".encode()),
                    ],
                    "scheme": "http",
                    "http_version": "1.1",
                    "client": ("127.0.0.1", 40000),
                    "server": ("127.0.0.1", 8102),
                    "root_path": "",
                }
                await app(scope, receive, send)  # type: ignore[arg-type]

        await run(min(2000, requests))
        started = time.perf_counter()
        await run(requests)
        return (time.perf_counter() - started) / requests * 1e6


def child(args: argparse.Namespace) -> None:
    import uvloop

    without = set(filter(None, args.child.split(",")))
    users = [line.split() for line in args.users_file.read_text().splitlines() if line]
    users = [fields for fields in users if fields[0] == "user"][:50]
    with open(os.devnull, "w") as sink:
        micros = uvloop.run(measure(without, args.requests, users, args.url, sink))
    print(json.dumps({"us": micros}))


def configuration(args: argparse.Namespace, without: list[str]) -> float:
    best = float("inf")
    for _ in range(args.repeat):
        command = [sys.executable, __file__, "--child", ",".join(without) or ",",
                   "--requests", str(args.requests), "--url", args.url,
                   "--users-file", str(args.users_file)]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        best = min(best, json.loads(out.strip().splitlines()[-1])["us"])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", default=URL, help="the seeded benchmark database")
    parser.add_argument(
        "--users-file", type=Path, default=BENCH_DIR / "results" / "users-default.tsv"
    )
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--without", action="append", default=[], choices=LAYERS)
    parser.add_argument("--each", action="store_true", help="also without each layer in turn")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    rows = [("full stack" if not args.without else "without " + ", ".join(args.without),
             configuration(args, args.without))]  # fmt: skip
    if args.each:
        # Authentication stays: without a verified caller the hot path hands everything on.
        for layer in LAYERS:
            if layer == "AuthenticationMiddleware":
                continue
            rows.append((f"without {layer}", configuration(args, [*args.without, layer])))
        only = [layer for layer in LAYERS if layer != "AuthenticationMiddleware"]
        rows.append(("authentication and hot path only", configuration(args, only)))
    print(f"`uv run python bench/stack.py {' '.join(sys.argv[1:])}`\n")
    print("| stack | µs per request (best of runs) |\n|---|---:|")
    for name, micros in rows:
        print(f"| {name} | {micros:.1f} |")


if __name__ == "__main__":
    main()
