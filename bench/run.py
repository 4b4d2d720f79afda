"""The benchmark: the API beside the raw floor, interleaved, on a freshly seeded database.

    uv run python bench/run.py                 # default size: 200 users x 1,000 tasks
    uv run python bench/run.py --size large    # 10,000 x 100 + one user with 50,000
    uv run python bench/run.py --help

What one run does, all of it on this machine's loopback interface only:

1. checks for wrk (installing the Debian package when running as root with apt-get);
2. as the PostgreSQL superuser (`--admin-url`), drops and creates the `todo_bench`
   database and its roles, migrates it with `todo-api migrate` as the owner, and seeds it
   with `bench/seed.py` (COPY, as the superuser: see there why);
3. starts `bench/floor.py` and `todo-api serve --workers 1` (TODO_API_ENV=production,
   every middleware on) with the same DATABASE_URL and JWT_SECRET, checks they answer
   the same JSON for the same task;
4. for each endpoint and connection count: a warm-up of each server, then floor, API,
   floor, API, ... (`--rounds`), so drift in the machine hits both alike; only one
   server is under load at a time, since wrk and the server share the two cores;
5. drives the API alone at 512 connections and counts status codes (503 or 429 shed
   load as designed; any other 5xx fails the run),
   then checks it still answers;
6. optionally profiles the API with py-spy (`--profile list,get`);
7. prints a markdown table and writes it, with the raw numbers, to `bench/results/`.

Every process it starts is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import seed as seeding
from loadgen import HOST, BenchError, Processes, WrkResult, ensure_wrk
from profiling import profile

BENCH_DIR = Path(__file__).resolve().parent
DB_NAME = "todo_bench"
OWNER_ROLE = "todo_bench_owner"
APP_LOGIN_ROLE = "todo_bench_app"
APP_ROLE = "todo_api_app"  # created by the migrations
JWT_SECRET = "bench-only-jwt-secret-not-for-production-0123456789"
ENDPOINTS = ("list", "list_filtered", "get", "create", "patch", "complete")
ENDPOINT_LABELS = {
    "list": "GET /api/me/tasks?limit=20",
    "list_filtered": "GET /api/me/tasks?status=pending&sort=title&limit=20",
    "get": "GET /api/me/tasks/{id}",
    "create": "POST /api/me/tasks",
    "patch": "PATCH /api/me/tasks/{id}",
    "complete": "PATCH /api/me/tasks/{id}/complete",
}
SIZES = {
    "default": {"users": 200, "tasks_per_user": 1000, "heavy_tasks": 0},
    "large": {"users": 10_000, "tasks_per_user": 100, "heavy_tasks": 50_000},
}


# ---------------------------------------------------------------------------- database


def _url(role: str, database: str, admin: str) -> str:
    """A URL on the admin URL's host and port, as `role` (trust or .pgpass: no password)."""
    parts = urlsplit(admin)
    return f"postgresql://{role}@{parts.hostname}:{parts.port or 5432}/{database}"


async def create_database(args: argparse.Namespace, marker: str, have_users_file: bool) -> bool:
    """Drop and create the bench database and its roles, unless one seeded alike is kept.

    Returns whether the existing database is reused.
    """
    admin = await asyncpg.connect(args.admin_url)
    try:
        if not await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            raise BenchError("--admin-url must connect as a superuser (it creates the database)")
        current = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            DB_NAME,
        )
        if args.reuse_db and current == marker and have_users_file:
            return True
        await admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        # CREATEROLE: the first migration creates the cluster-wide application role.
        await admin.execute(
            f"""DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                    CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS;
                END IF;
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_LOGIN_ROLE}') THEN
                    CREATE ROLE {APP_LOGIN_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS;
                END IF;
            END $$"""
        )
        await admin.execute(f"CREATE DATABASE {DB_NAME} OWNER {OWNER_ROLE}")
        return False
    finally:
        await admin.close()


async def seed_database(
    args: argparse.Namespace, size: dict[str, int], marker: str, reuse: bool
) -> dict[str, Any]:
    """Seed the migrated database as the superuser (unless reused); returns facts about it."""
    conn = await asyncpg.connect(urlunsplit(urlsplit(args.admin_url)._replace(path=f"/{DB_NAME}")))
    try:
        # The login role for `--as app` takes the application role's grants by inheritance.
        await conn.execute(f"GRANT {APP_ROLE} TO {APP_LOGIN_ROLE}")
        facts: dict[str, Any] = {
            "reused": reuse,
            "postgres": await conn.fetchval("SHOW server_version"),
        }
        if not reuse:
            print(
                f"seeding {size['users']:,} users x {size['tasks_per_user']:,} tasks"
                + (f" + one user with {size['heavy_tasks']:,}" if size["heavy_tasks"] else ""),
                flush=True,
            )
            result = await seeding.seed(
                conn,
                users=size["users"],
                tasks_per_user=size["tasks_per_user"],
                heavy_tasks=size["heavy_tasks"],
                random_seed=args.random_seed,
            )
            await conn.execute(f"COMMENT ON DATABASE {DB_NAME} IS '{marker}'")
            facts.update(users=result.users, seconds=round(result.seconds, 1), tasks=result.tasks)
        facts["tasks_at_start"] = await conn.fetchval("SELECT count(*) FROM tasks")
        facts["size"] = await conn.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('tasks'))"
        )
        return facts
    finally:
        await conn.close()


def migrate(owner_url: str) -> None:
    """`todo-api migrate` as the owner, in a clean environment (no stray .env or URLs)."""
    env = {**_base_env(), "DATABASE_MIGRATION_URL": owner_url}
    with tempfile.TemporaryDirectory() as cwd:
        subprocess.run([str(_todo_api()), "migrate"], env=env, cwd=cwd, check=True)


async def leftover_connections(admin_url: str) -> int:
    """Backends still connected to the bench database (should be none once we stopped)."""
    conn = await asyncpg.connect(admin_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            DB_NAME,
        )
        return count
    finally:
        await conn.close()


def _todo_api() -> Path:
    return Path(sys.executable).parent / "todo-api"


def _base_env() -> dict[str, str]:
    # Only what a process needs to run; the developer's DATABASE_URL & co. must not leak in.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


# ---------------------------------------------------------------------------- servers


def server_env(database_url: str, extra: list[str]) -> dict[str, str]:
    """Production-like settings shared by the floor and the API."""
    env = {
        **_base_env(),
        "TODO_API_ENV": "production",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "DOCS_ENABLED": "false",
        # A browser frontend's origin, so the CORS layer is configured as in production.
        "CORS_ORIGINS": "https://app.example.com",
        # The rate limiter stays on and counts every request, so its cost is measured,
        # but with a budget no benchmark user exhausts: at the floor's speed each of 200
        # users sends about ten requests a second, the default budget's whole minute.
        "RATE_LIMIT_PER_MINUTE": "1000000",
    }
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise BenchError(f"--api-env takes KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Poll `/healthz` until it answers 200; fail early, with the log, if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"server on port {port} exited; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"server on port {port} did not become ready; see {log}")


def fetch_json(port: int, path: str, token: str) -> tuple[int, Any]:
    """One GET with a bearer token: the status and the decoded body (None for an error)."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def check_same_answers(
    floor_port: int, api_port: int, users_file: Path, allow_drift: bool
) -> list[str]:
    """Both servers must return the same JSON for the same reads, or the comparison is void.

    When the API's tasks carry fields the floor does not serve yet (the task model grew
    and `bench/floor.py` was not brought along), that is an error unless `allow_drift`;
    the fields are returned so the report can say the comparison is not like for like.
    """
    _kind, _user_id, token, task_id, *_ = users_file.read_text().split("\n", 1)[0].split()
    extra: set[str] = set()
    for path in (
        f"/api/me/tasks/{task_id}",
        "/api/me/tasks?limit=20",
        "/api/me/tasks?status=pending&sort=title&limit=20",
    ):
        floor_status, floor = fetch_json(floor_port, path, token)
        api_status, api = fetch_json(api_port, path, token)
        if floor_status != 200 or api_status != 200:
            raise BenchError(f"{path}: floor answered {floor_status}, API {api_status}")
        floor_tasks = floor if isinstance(floor, list) else [floor]
        api_tasks = api if isinstance(api, list) else [api]
        same = len(floor_tasks) == len(api_tasks) and all(
            f.keys() <= a.keys() and all(a[k] == v for k, v in f.items())
            for f, a in zip(floor_tasks, api_tasks, strict=True)
        )
        missing = {k for a in api_tasks for k in a} - {k for f in floor_tasks for k in f}
        if not same or (missing and not allow_drift):
            raise BenchError(
                f"floor and API disagree on {path}"
                + (f"; the API also returns {sorted(missing)}" if missing else "")
                + ". Bring bench/floor.py's SQL up to the API's (tests/test_round_trips.py "
                "shows every statement), or pass --allow-floor-drift to measure anyway."
            )
        extra |= missing
    return sorted(extra)


# ---------------------------------------------------------------------------- report


@dataclass
class Row:
    """One line of the table: every round of one endpoint at one connection count."""

    endpoint: str
    connections: int
    floor: list[WrkResult]
    api: list[WrkResult]
    #: `user` rotates over the ordinary users; `heavy` sends every request as the heavy one.
    select: str = "user"

    @property
    def label(self) -> str:
        suffix = " (heavy user)" if self.select == "heavy" else ""
        return ENDPOINT_LABELS[self.endpoint] + suffix


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def table(rows: list[Row]) -> str:
    """The side-by-side markdown table (means over the rounds)."""
    lines = [
        "| endpoint | conns | floor rps | API rps | API/floor | floor p50 | floor p99 "
        "| API p50 | API p99 | errors floor/API |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        floor_rps = _mean([r.rps for r in row.floor])
        api_rps = _mean([r.rps for r in row.api])
        ratio = api_rps / floor_rps if floor_rps else 0.0
        lines.append(
            f"| {row.label} | {row.connections} "
            f"| {floor_rps:,.0f} | {api_rps:,.0f} | {ratio:.2f} "
            f"| {_mean([r.p50_ms for r in row.floor]):.1f} ms "
            f"| {_mean([r.p99_ms for r in row.floor]):.1f} ms "
            f"| {_mean([r.p50_ms for r in row.api]):.1f} ms "
            f"| {_mean([r.p99_ms for r in row.api]):.1f} ms "
            f"| {sum(r.errors for r in row.floor)}/{sum(r.errors for r in row.api)} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- main


def _status_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB, from /proc."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values


def memory_run(
    runner: Processes, pid: int, args: argparse.Namespace, rows: list[Row]
) -> dict[str, Any]:
    """Drive the API alone for at least `--memory-requests` requests in two halves and
    read its RSS before, between and after: a leak shows as growth in the second half,
    when caches and pools have long reached their steady size. Each half runs wrk until
    it has its share of requests (wrk stops on time, not on a count; the rate measured
    so far sizes each run)."""
    endpoint, connections = args.memory_endpoint, 32
    measured = [r for row in rows if row.endpoint == endpoint for r in row.api]
    rps = _mean([r.rps for r in measured]) or 300.0
    share = args.memory_requests / 2
    start = _status_mib(pid)
    halves = []
    for _ in range(2):
        requests = errors = 0
        while requests < share:
            seconds = max(2.0, (share - requests) / rps * 1.05)
            result = runner.wrk_run(args.api_port, endpoint, connections, seconds)
            requests += result.requests
            errors += result.errors
            if not result.requests:
                break  # nothing answered: reported as it is, not retried forever
            rps = result.rps or rps
        halves.append((requests, errors, _status_mib(pid)))
    (first, first_errors, half), (second, second_errors, end) = halves
    return {
        "endpoint": endpoint,
        "connections": connections,
        "requests": first + second,
        "errors": first_errors + second_errors,
        "rss_start_mib": start["VmRSS"],
        "rss_half_mib": half["VmRSS"],
        "rss_end_mib": end["VmRSS"],
        "peak_half_mib": half["VmHWM"],
        "peak_end_mib": end["VmHWM"],
        "second_half_growth_mib": round(end["VmRSS"] - half["VmRSS"], 1),
    }


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the API beside the raw floor (see bench/README.md)."
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--users", type=int, help="override the size's user count")
    parser.add_argument("--tasks-per-user", type=int, help="override the size's tasks per user")
    parser.add_argument("--heavy-tasks", type=int, help="tasks of one extra heavy user")
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--connections", default="32,128")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=2, help="floor/API pairs per cell")
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=100_000,
        help="requests of the long run measuring the API's RSS (0 to skip)",
    )
    parser.add_argument("--memory-endpoint", choices=ENDPOINTS, default="list")
    parser.add_argument("--overload-connections", type=int, default=512, help="0 to skip")
    parser.add_argument("--overload-duration", type=float, default=10.0)
    parser.add_argument(
        "--as",
        dest="db_role",
        choices=("owner", "app"),
        default="owner",
        help="DATABASE_URL role of both servers: the table owner (each transaction "
        "then drops to the application role, as with Neon's single URL) or a login "
        "role that is a member of the application role",
    )
    parser.add_argument(
        "--admin-url",
        default=f"postgresql://postgres@{HOST}:5432/postgres",
        help="superuser URL on loopback (creates the bench database, seeds it)",
    )
    parser.add_argument(
        "--allow-floor-drift",
        action="store_true",
        help="measure even if the API's tasks have fields the floor does not serve",
    )
    parser.add_argument("--reuse-db", action="store_true", help="keep a database seeded alike")
    parser.add_argument(
        "--profile", default="", help="endpoints to profile with py-spy, e.g. list,get"
    )
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--api-env", action="append", default=[], help="KEY=VALUE for both servers (repeatable)"
    )
    parser.add_argument("--floor-port", type=int, default=8101)
    parser.add_argument("--api-port", type=int, default=8102)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def _raise_file_limit() -> None:
    # 512 connections plus the pool need more descriptors than a common soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    """Run the whole benchmark; returns the process exit code."""
    args = _parse_args(argv)
    seeding.require_loopback(args.admin_url)
    size = dict(SIZES[args.size])
    for key in ("users", "tasks_per_user", "heavy_tasks"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    endpoints = [e for e in args.endpoints.split(",") if e]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise BenchError(f"unknown endpoints {sorted(unknown)}; choose from {ENDPOINTS}")
    connections = [int(c) for c in args.connections.split(",") if c]
    profiled = [e for e in args.profile.split(",") if e]

    signal.signal(signal.SIGTERM, _on_sigterm)
    _raise_file_limit()
    wrk = ensure_wrk()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    users_file = args.out / f"users-{args.size}.tsv"
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="todo-bench-") as work:
        runner = Processes(wrk, users_file, Path(work))
        try:
            marker = (
                f"todo-api bench: users={size['users']} tasks_per_user={size['tasks_per_user']} "
                f"heavy={size['heavy_tasks']} seed={args.random_seed} model=full"
            )
            reuse = asyncio.run(create_database(args, marker, users_file.exists()))
            migrate(_url(OWNER_ROLE, DB_NAME, args.admin_url))
            facts = asyncio.run(seed_database(args, size, marker, reuse))
            if facts["reused"]:
                seeding.refresh_tokens(users_file, JWT_SECRET)
            else:
                seeding.write_users_file(users_file, facts.pop("users"), JWT_SECRET)
                print(f"  seeded in {facts['seconds']} s", flush=True)
            role = OWNER_ROLE if args.db_role == "owner" else APP_LOGIN_ROLE
            database_url = _url(role, DB_NAME, args.admin_url)
            env = server_env(database_url, args.api_env)
            logs = args.out / "logs"
            logs.mkdir(exist_ok=True)
            floor_log, api_log = logs / "floor.log", logs / "api.log"
            floor = runner.start(
                [sys.executable, str(BENCH_DIR / "floor.py"), "--port", str(args.floor_port)],
                env=env,
                log=floor_log,
            )
            api = runner.start(
                [str(_todo_api()), "serve", "--host", HOST, "--port", str(args.api_port),
                 "--workers", "1"],
                env=env,
                log=api_log,
            )  # fmt: skip
            wait_ready(args.floor_port, floor, floor_log)
            wait_ready(args.api_port, api, api_log)
            drift = check_same_answers(
                args.floor_port, args.api_port, users_file, args.allow_floor_drift
            )
            facts["floor_drift"] = drift
            if drift:
                print(f"warning: the floor does not serve {drift}; not like for like")
            else:
                print("floor and API answer alike; measuring", flush=True)

            cells = [(e, c, "user") for e in endpoints for c in connections]
            if size["heavy_tasks"]:
                # The first pages of the user with the most tasks, to set beside everyone
                # else's: with the right indexes they cost the same.
                reads = [e for e in endpoints if e.startswith("list")]
                cells += [(e, connections[0], "heavy") for e in reads]
            rows: list[Row] = []
            for endpoint, conns, select in cells:
                row = Row(endpoint, conns, [], [], select)
                for port in (args.floor_port, args.api_port):
                    runner.wrk_run(port, endpoint, conns, args.warmup, select=select)
                for _ in range(args.rounds):
                    for port, results in ((args.floor_port, row.floor), (args.api_port, row.api)):
                        results.append(
                            runner.wrk_run(port, endpoint, conns, args.duration, select=select)
                        )
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)

            memory: dict[str, Any] = {}
            if args.memory_requests:
                memory = memory_run(runner, api.pid, args, rows)
                print(f"memory: {memory}", flush=True)

            overload: dict[str, Any] = {}
            if args.overload_connections:
                result = runner.wrk_run(
                    args.api_port,
                    "list",
                    args.overload_connections,
                    args.overload_duration,
                    count_status=True,
                )
                token = users_file.read_text().split(maxsplit=3)[2]
                overload = {
                    "connections": args.overload_connections,
                    "endpoint": "list",
                    "rps": result.rps,
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "statuses": result.statuses,
                    "socket_errors": result.socket_errors,
                    # Shedding load with 503 (pool exhausted) or 429 is the designed
                    # answer to overload (issue 7); any other 5xx is a failure.
                    "unexpected_5xx": sum(
                        n for s, n in result.statuses.items() if int(s) >= 500 and s != "503"
                    ),
                    # Not wedged: it must answer a normal request right after.
                    "healthz_after": fetch_json(args.api_port, "/healthz", "")[0],
                    "list_after": fetch_json(args.api_port, "/api/me/tasks?limit=20", token)[0],
                }
                print(f"overload: {overload}", flush=True)

            profiles = {
                endpoint: profile(
                    runner, api.pid, args.api_port, endpoint, args.profile_seconds, args.out
                )
                for endpoint in profiled
            }
        except KeyboardInterrupt:
            print("\ninterrupted; stopping everything", file=sys.stderr)
            return 130
        finally:
            runner.stop_all()
            with contextlib.suppress(Exception):
                left = asyncio.run(leftover_connections(args.admin_url))
                if left:
                    print(f"warning: {left} connection(s) to {DB_NAME} remain", file=sys.stderr)

    elapsed = time.monotonic() - started
    command = "uv run python bench/run.py " + " ".join(argv)
    report = render(command.strip(), facts, size, args, rows, overload, profiles, elapsed, memory)
    print()
    print(report)
    (args.out / f"run-{stamp}.md").write_text(report + "\n")
    raw = {
        "command": command,
        "machine": machine(),
        "database": facts,
        "size": size,
        "rows": [
            {
                "endpoint": r.endpoint,
                "connections": r.connections,
                "select": r.select,
                "floor": [asdict(x) for x in r.floor],
                "api": [asdict(x) for x in r.api],
            }
            for r in rows
        ],
        "overload": overload,
        "memory": memory,
        "profiles": profiles,
    }
    (args.out / f"run-{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"\nwritten: {args.out / f'run-{stamp}.md'} (+ .json)")
    if overload and (overload["unexpected_5xx"] or overload["list_after"] != 200):
        print("FAIL: the API answered 5xx other than 503, or stayed wedged", file=sys.stderr)
        return 1
    return 0


def render(
    command: str,
    facts: dict[str, Any],
    size: dict[str, int],
    args: argparse.Namespace,
    rows: list[Row],
    overload: dict[str, Any],
    profiles: dict[str, Any],
    elapsed: float,
    memory: dict[str, Any] | None = None,
) -> str:
    """The markdown report of one run."""
    info = machine()
    out = [
        f"`{command}` ({elapsed / 60:.1f} min)",
        "",
        f"- machine: {info['cpus']} CPUs ({info['cpu']}), {info['memory']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, PostgreSQL {facts['postgres']}",
        f"- data: {size['users']:,} users x {size['tasks_per_user']:,} tasks"
        + (f" + 1 user x {size['heavy_tasks']:,}" if size["heavy_tasks"] else "")
        + f"; {facts['tasks_at_start']:,} tasks ({facts['size']} with indexes) at the start",
        f"- servers: one process each, DATABASE_URL as the {args.db_role} role; "
        f"wrk 2 threads, {args.duration:g} s per run after {args.warmup:g} s warm-up, "
        f"{args.rounds} rounds floor/API interleaved, means shown",
        *(
            [f"- NOT LIKE FOR LIKE: the API's tasks also carry {facts['floor_drift']}"]
            if facts.get("floor_drift")
            else []
        ),
        "",
        table(rows),
    ]
    if overload:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(overload["statuses"].items()))
        out += [
            "",
            f"Overload, API only, {overload['connections']} connections on "
            f"{ENDPOINT_LABELS['list']}: {overload['rps']:,.0f} rps, p50 "
            f"{overload['p50_ms']:.0f} ms, p99 {overload['p99_ms']:.0f} ms; statuses {statuses}; "
            f"socket errors {overload['socket_errors']}; right afterwards /healthz "
            f"{overload['healthz_after']} and a list {overload['list_after']}.",
        ]
    if memory:
        out += [
            "",
            f"Memory of the API worker over {memory['requests']:,} requests of "
            f"{ENDPOINT_LABELS[memory['endpoint']]} at {memory['connections']} connections "
            f"(after the measured runs): RSS {memory['rss_start_mib']} MiB before, "
            f"{memory['rss_half_mib']} MiB after the first half, {memory['rss_end_mib']} MiB "
            f"after the second; peak (VmHWM) {memory['peak_half_mib']} MiB after the first "
            f"half, {memory['peak_end_mib']} MiB at the end; growth over the second half "
            f"{memory['second_half_growth_mib']:+} MiB.",
        ]
    for endpoint, summary in profiles.items():
        out += [
            "",
            f"Profile of the API on {ENDPOINT_LABELS[endpoint]} ({summary['samples']} samples):",
        ]
        out.append("- threads: " + ", ".join(f"{n} {p}%" for n, p in summary["threads"]))
        out.append(
            "- self time by package: "
            + ", ".join(f"{n} {p}%" for n, p in summary["self_by_package"])
        )
        out.append(
            "- self time by function: "
            + ", ".join(f"{n} {p}%" for n, p in summary["self_by_function"][:10])
        )
        # The server, the loop and the middleware chain enclose nearly every sample;
        # below them are the parts of a request worth comparing.
        parts = [(n, p) for n, p in summary["inclusive"] if p < 40][:15]
        out.append("- inclusive, below the middleware: " + ", ".join(f"{n} {p}%" for n, p in parts))
    return "\n".join(out)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
