"""The benchmark: the API beside its floor, side by side in one run, on a fresh database.

    uv run python bench/run.py
    uv run python bench/run.py --endpoints get,list --spellings me --rounds 1   # a quick look
    uv run python bench/run.py --help

What one run does, all of it on this machine's loopback interface:

1. as the PostgreSQL superuser (`--admin-url`), drops and creates the `todo_bench`
   database and its roles, migrates it with `todo-api migrate` as the owner and seeds it
   with `bench/seed.py` (COPY, as the superuser: see there why);
2. starts `bench/floor.py` and `todo-api serve --workers 1` (TODO_API_ENV=production,
   every middleware on) with the same DATABASE_URL and JWT_SECRET, and checks that they
   answer every request of the benchmark alike;
3. for each endpoint of `bench/endpoints.py` and each spelling of its URL: a warm-up of
   each server, then floor, API, floor, API, ... (`--rounds`) at 32 connections, so that
   drift on the machine hits both alike; only one server is under load at a time, since
   wrk and the server share the cores;
4. then drives the API alone at 128 and 512 connections on the same requests, counting
   status codes;
5. optionally profiles the API with py-spy (`--profile list:me,create:short`);
6. prints the table and writes it, with every run's numbers, to `bench/results/`.

Every process it starts is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import seed as seeding
from endpoints import ENDPOINTS, SPELLINGS, Endpoint
from loadgen import HOST, BenchError, Processes, WrkResult, ensure_wrk
from profiling import profile

BENCH_DIR = Path(__file__).resolve().parent
DB_NAME = "todo_bench"
OWNER_ROLE = "todo_bench_owner"
APP_LOGIN_ROLE = "todo_bench_app"
APP_ROLE = "todo_api_app"  # created by the migrations
JWT_SECRET = "bench-only-jwt-secret-not-for-production-0123456789"
#: API requests/s at least this share of the floor's, at the measured connection count.
READ_TARGET, WRITE_TARGET = 0.6, 0.5
#: API p99 at most this multiple of the floor's.
P99_TARGET = 1.5


# ---------------------------------------------------------------------------- database


def _url(role: str, database: str, admin: str) -> str:
    """A URL on the admin URL's host and port, as `role` (trust or .pgpass: no password)."""
    parts = urlsplit(admin)
    return f"postgresql://{role}@{parts.hostname}:{parts.port or 5432}/{database}"


def _bench_admin_url(admin: str) -> str:
    return urlunsplit(urlsplit(admin)._replace(path=f"/{DB_NAME}"))


async def create_database(admin_url: str, marker: str, reuse: bool) -> bool:
    """Drop and create the bench database and its roles, unless `reuse` and the one there
    was seeded alike. Returns whether the existing database is kept."""
    admin = await asyncpg.connect(admin_url)
    try:
        if not await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            raise BenchError("--admin-url must connect as a superuser (it creates the database)")
        current = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            DB_NAME,
        )
        if reuse and current == marker:
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
    args: argparse.Namespace, marker: str, users_file: Path, reuse: bool
) -> dict[str, Any]:
    """Seed the migrated database as the superuser (unless kept); facts about it."""
    conn = await asyncpg.connect(_bench_admin_url(args.admin_url))
    try:
        # The login role for `--as app` takes the application role's grants by inheritance.
        await conn.execute(f"GRANT {APP_ROLE} TO {APP_LOGIN_ROLE}")
        facts: dict[str, Any] = {
            "reused": reuse,
            "postgres": await conn.fetchval("SHOW server_version"),
        }
        if reuse:
            seeding.refresh_tokens(users_file, JWT_SECRET)
        else:
            print(f"seeding {args.users:,} users x {args.tasks_per_user:,} tasks", flush=True)
            result = await seeding.seed(
                conn,
                users=args.users,
                tasks_per_user=args.tasks_per_user,
                random_seed=args.random_seed,
            )
            seeding.write_users_file(users_file, result.users, JWT_SECRET)
            await conn.execute(f"COMMENT ON DATABASE {DB_NAME} IS '{marker}'")
            facts["seconds"] = round(result.seconds, 1)
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


def write_versions(admin_url: str, users: list[User], path: Path) -> None:
    """Every sampled task's current version, for the If-Match runs: lines of
    `user_id token task_id version`, in an order that alternates between users."""
    tokens = {user.user_id: user.token for user in users}
    rows = asyncio.run(_versions(admin_url, [task for user in users for task in user.tasks]))
    lines = [f"{r['user_id']} {tokens[r['user_id']]} {r['id']} {r['version']}" for r in rows]
    random.Random(0).shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


async def _versions(admin_url: str, tasks: list[int]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_bench_admin_url(admin_url))
    try:
        # The server goes on with the requests of a wrk run that just ended (those in
        # flight, those waiting for a connection): wait until they have committed.
        quiet, deadline = 0, time.monotonic() + 15
        while quiet < 3 and time.monotonic() < deadline:
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            quiet = 0 if busy else quiet + 1
            await asyncio.sleep(0.1)
        return list(
            await conn.fetch(
                "SELECT user_id, id, version FROM tasks WHERE id = any($1::bigint[])", tasks
            )
        )
    finally:
        await conn.close()


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


@dataclass(frozen=True)
class User:
    """A line of the users file."""

    user_id: str
    token: str
    tag: str
    tasks: list[int]

    @classmethod
    def read_all(cls, path: Path) -> list[User]:
        users = []
        for line in path.read_text().splitlines():
            user_id, token, tag, *tasks = line.split()
            users.append(cls(user_id, token, tag, [int(task) for task in tasks]))
        return users


def server_env(database_url: str, extra: list[str]) -> dict[str, str]:
    """Production settings, shared by the floor and the API."""
    env = {
        **_base_env(),
        "TODO_API_ENV": "production",
        "JWT_SECRET": JWT_SECRET,
        "DATABASE_URL": database_url,
        "DOCS_ENABLED": "false",
        # A browser frontend's origin, so the CORS layer is configured as in production.
        "CORS_ORIGINS": "https://app.example.com",
        # wrk and the checks reach the servers by address; the Host check runs, as it
        # must in production.
        "ALLOWED_HOSTS": "127.0.0.1",
        # The rate limiter stays on and counts every request, so its cost is measured,
        # with a budget no benchmark user exhausts.
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


def call(
    port: int,
    method: str,
    path: str,
    token: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request: the status, the headers and the decoded JSON body (None if none)."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if body is not None:
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=body, method=method, headers=sent
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, None


def check_same_answers(floor_port: int, api_port: int, user: User) -> None:
    """Both servers must answer every request of the benchmark alike, or the comparison
    is void: the same JSON for reads, the same status and fields for writes, and 412 for
    a stale `If-Match`."""
    ports = {"floor": floor_port, "API": api_port}
    for spelling in SPELLINGS:
        for endpoint in ENDPOINTS.values():
            path = endpoint.url(spelling, user=user.user_id, task_id=user.tasks[0], tag=user.tag)
            answers: dict[str, tuple[int, Any]] = {}
            for name, port in ports.items():
                headers = {}
                if endpoint.if_match:
                    task_path = ENDPOINTS["get"].url(
                        spelling, user=user.user_id, task_id=user.tasks[0]
                    )
                    headers["If-Match"] = call(port, "GET", task_path, user.token)[1]["etag"]
                status, _, body = call(
                    port, endpoint.method, path, user.token, endpoint.payload(), headers
                )
                answers[name] = (status, body)
                if endpoint.if_match:
                    stale = call(port, "PATCH", path, user.token, endpoint.payload(), headers)[0]
                    if stale != 412:
                        raise BenchError(f"{name}: a stale If-Match on {path} answered {stale}")
            (floor_status, floor), (api_status, api) = answers["floor"], answers["API"]
            expected = 201 if endpoint.method == "POST" else 200
            if floor_status != expected or api_status != expected:
                raise BenchError(
                    f"{endpoint.label(spelling)}: floor answered {floor_status}, API {api_status}"
                )
            same = _shape(floor) == _shape(api) if endpoint.write else floor == api
            if not same:
                raise BenchError(
                    f"floor and API disagree on {endpoint.label(spelling)}: bring "
                    f"bench/floor.py up to the API (tests/test_bench_floor.py shows how)\n"
                    f"floor: {floor}\nAPI:   {api}"
                )


def _shape(body: Any) -> Any:
    """The field names of a task (or of each task of a page)."""
    if isinstance(body, list):
        return [sorted(item) for item in body]
    return sorted(body) if isinstance(body, dict) else body


# ---------------------------------------------------------------------------- measuring


@dataclass
class Cell:
    """One endpoint on one spelling: every run of both servers."""

    endpoint: Endpoint
    spelling: str
    floor: list[WrkResult] = field(default_factory=list)
    api: list[WrkResult] = field(default_factory=list)
    #: The API alone at higher connection counts, by connection count.
    loaded: dict[int, WrkResult] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.endpoint.label(self.spelling)

    def rps(self, side: str) -> float:
        return _mean([r.rps for r in getattr(self, side)])

    def p99(self, side: str) -> float:
        return _mean([r.p99_ms for r in getattr(self, side)])

    @property
    def ratio(self) -> float:
        floor = self.rps("floor")
        return self.rps("api") / floor if floor else 0.0

    @property
    def p99_ratio(self) -> float:
        floor = self.p99("floor")
        return self.p99("api") / floor if floor else float("inf")

    @property
    def target(self) -> float:
        return WRITE_TARGET if self.endpoint.write else READ_TARGET

    def failures(self) -> list[str]:
        """The targets this cell misses, as short phrases."""
        missed = []
        if self.ratio < self.target:
            missed.append(f"req/s {self.ratio:.2f}x < {self.target}x")
        if self.p99_ratio > P99_TARGET:
            missed.append(f"p99 {self.p99_ratio:.2f}x > {P99_TARGET}x")
        errors = sum(r.errors for r in self.api)
        errors += sum(r.errors for r in self.loaded.values())
        if errors:
            missed.append(f"{errors} API errors")
        return missed


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def wrk_request(endpoint: Endpoint, spelling: str, versions: Path | None) -> dict[str, str]:
    """The wrk script's environment for this endpoint and spelling."""
    return {
        "BENCH_METHOD": endpoint.method,
        "BENCH_PATH": SPELLINGS[spelling] + endpoint.path,
        "BENCH_BODY": endpoint.body,
        "BENCH_VERSIONS_FILE": str(versions) if endpoint.if_match and versions else "",
    }


def table(cells: list[Cell], connections: int, loaded: list[int]) -> str:
    """The side-by-side markdown table (means over the rounds)."""
    errors_head = "".join(f" API errors at {c} |" for c in loaded)
    lines = [
        f"| endpoint | floor req/s | API req/s | API/floor (target) | floor p99 | API p99 "
        f"| p99 API/floor | errors at {connections} floor/API |{errors_head} targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(loaded) + "---|",
    ]
    for cell in cells:
        loaded_errors = "".join(
            f" {cell.loaded[c].errors if c in cell.loaded else '-'} |" for c in loaded
        )
        missed = cell.failures()
        lines.append(
            f"| `{cell.label}` | {cell.rps('floor'):,.0f} | {cell.rps('api'):,.0f} "
            f"| {cell.ratio:.2f} (>= {cell.target}) "
            f"| {cell.p99('floor'):.1f} ms | {cell.p99('api'):.1f} ms | {cell.p99_ratio:.2f} "
            f"| {sum(r.errors for r in cell.floor)}/{sum(r.errors for r in cell.api)} "
            f"|{loaded_errors} {'met' if not missed else 'MISSED: ' + '; '.join(missed)} |"
        )
    return "\n".join(lines)


def loaded_table(cells: list[Cell]) -> str:
    """The API alone at the higher connection counts."""
    lines = [
        "| endpoint | connections | API req/s | p50 | p99 | statuses | socket errors |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for cell in cells:
        for connections, r in cell.loaded.items():
            statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.statuses.items()))
            lines.append(
                f"| `{cell.label}` | {connections} | {r.rps:,.0f} | {r.p50_ms:.0f} ms "
                f"| {r.p99_ms:.0f} ms | {statuses} | {r.socket_errors} |"
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
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split(" [")[0].strip(),
    }


# ---------------------------------------------------------------------------- main


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the API beside its floor (see bench/README.md)."
    )
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tasks-per-user", type=int, default=1000)
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS), help="comma-separated")
    parser.add_argument("--spellings", default=",".join(SPELLINGS), help="comma-separated")
    parser.add_argument("--connections", type=int, default=32, help="of the side-by-side runs")
    parser.add_argument(
        "--loaded", default="128,512", help="connection counts of the API-only runs ('' skips)"
    )
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3, help="floor/API pairs per cell")
    parser.add_argument("--loaded-duration", type=float, default=5.0)
    parser.add_argument(
        "--as",
        dest="db_role",
        choices=("owner", "app"),
        default="owner",
        help="DATABASE_URL role of both servers: the table owner (each transaction then "
        "drops to the application role, as with Neon's single URL) or a login role that "
        "is a member of the application role",
    )
    parser.add_argument(
        "--admin-url",
        default=f"postgresql://postgres@{HOST}:5432/postgres",
        help="superuser URL on loopback (creates the bench database, seeds it)",
    )
    parser.add_argument("--reuse-db", action="store_true", help="keep a database seeded alike")
    parser.add_argument(
        "--profile", default="", help="py-spy the API on endpoint[:spelling],... (spelling: me)"
    )
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument(
        "--api-env", action="append", default=[], help="KEY=VALUE for both servers (repeatable)"
    )
    parser.add_argument("--floor-port", type=int, default=8101)
    parser.add_argument("--api-port", type=int, default=8102)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    return parser.parse_args(argv)


def _names(text: str, known: Any, what: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = set(names) - set(known)
    if unknown:
        raise BenchError(f"unknown {what} {sorted(unknown)}; choose from {list(known)}")
    return names


def _raise_file_limit() -> None:
    # 512 connections plus the pools need more descriptors than a common soft limit of 1024.
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
    endpoints = [ENDPOINTS[name] for name in _names(args.endpoints, ENDPOINTS, "endpoints")]
    spellings = _names(args.spellings, SPELLINGS, "spellings")
    loaded = [int(c) for c in args.loaded.split(",") if c]
    profiled = []
    for item in filter(None, args.profile.split(",")):
        name, _, spelling = item.partition(":")
        _names(name, ENDPOINTS, "endpoints")
        profiled.append((ENDPOINTS[name], _names(spelling or "me", SPELLINGS, "spellings")[0]))

    signal.signal(signal.SIGTERM, _on_sigterm)
    _raise_file_limit()
    wrk = ensure_wrk()
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    users_file = args.out / "users.tsv"
    started = time.monotonic()
    load_before = os.getloadavg()
    cells = [Cell(endpoint, spelling) for endpoint in endpoints for spelling in spellings]
    profiles: dict[str, Any] = {}

    with tempfile.TemporaryDirectory(prefix="todo-bench-") as work:
        runner = Processes(wrk, users_file, Path(work))
        versions = Path(work) / "versions.tsv"
        try:
            marker = (
                f"todo-api bench: users={args.users} tasks_per_user={args.tasks_per_user} "
                f"seed={args.random_seed} users-file=v2"
            )
            reuse = asyncio.run(
                create_database(args.admin_url, marker, args.reuse_db and users_file.exists())
            )
            migrate(_url(OWNER_ROLE, DB_NAME, args.admin_url))
            facts = asyncio.run(seed_database(args, marker, users_file, reuse))
            users = User.read_all(users_file)
            role = OWNER_ROLE if args.db_role == "owner" else APP_LOGIN_ROLE
            env = server_env(_url(role, DB_NAME, args.admin_url), args.api_env)
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
            check_same_answers(args.floor_port, args.api_port, users[0])
            print("floor and API answer alike; measuring", flush=True)

            def run(port: int, cell: Cell, connections: int, seconds: float) -> WrkResult:
                if cell.endpoint.if_match:
                    write_versions(args.admin_url, users, versions)
                request = wrk_request(cell.endpoint, cell.spelling, versions)
                return runner.wrk_run(
                    port, request, connections, seconds, count_status=connections in loaded
                )

            for endpoint in endpoints:
                mine = [cell for cell in cells if cell.endpoint is endpoint]
                for cell in mine:
                    for port in (args.floor_port, args.api_port):
                        run(port, cell, args.connections, args.warmup)
                    for _ in range(args.rounds):
                        cell.floor.append(
                            run(args.floor_port, cell, args.connections, args.duration)
                        )
                        cell.api.append(run(args.api_port, cell, args.connections, args.duration))
                    print(table([cell], args.connections, []).splitlines()[-1], flush=True)
                for cell in mine:
                    for connections in loaded:
                        result = run(args.api_port, cell, connections, args.loaded_duration)
                        cell.loaded[connections] = result
                        print(
                            f"  {cell.label} at {connections}: {result.rps:,.0f} req/s, "
                            f"p99 {result.p99_ms:.0f} ms, statuses {result.statuses}, "
                            f"socket errors {result.socket_errors}",
                            flush=True,
                        )

            for endpoint, spelling in profiled:
                if endpoint.if_match:
                    write_versions(args.admin_url, users, versions)
                name = f"{endpoint.name}-{spelling}"
                request = wrk_request(endpoint, spelling, versions)
                profiles[endpoint.label(spelling)] = profile(
                    runner, api.pid, args.api_port, request, name, args.profile_seconds, args.out
                )
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
    command = " ".join(["uv run python bench/run.py", *map(shlex.quote, argv)])
    facts["load_before"] = [round(x, 2) for x in load_before]
    report = render(command, facts, args, cells, loaded, profiles, elapsed)
    print()
    print(report)
    (args.out / f"run-{stamp}.md").write_text(report + "\n")
    raw = {
        "command": command,
        "machine": machine(),
        "database": facts,
        "connections": args.connections,
        "cells": [
            {
                "endpoint": cell.endpoint.name,
                "spelling": cell.spelling,
                "label": cell.label,
                "floor": [asdict(r) for r in cell.floor],
                "api": [asdict(r) for r in cell.api],
                "api_loaded": {str(c): asdict(r) for c, r in cell.loaded.items()},
                "missed": cell.failures(),
            }
            for cell in cells
        ],
        "profiles": profiles,
    }
    (args.out / f"run-{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"\nwritten: {args.out / f'run-{stamp}.md'} (+ .json)")
    return 0


def render(
    command: str,
    facts: dict[str, Any],
    args: argparse.Namespace,
    cells: list[Cell],
    loaded: list[int],
    profiles: dict[str, Any],
    elapsed: float,
) -> str:
    """The markdown report of one run."""
    info = machine()
    missed = [cell for cell in cells if cell.failures()]
    out = [
        f"`{command}` ({elapsed / 60:.1f} min, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"- machine: {info['cpus']} CPUs ({info['cpu']}), {info['memory']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, PostgreSQL {facts['postgres']}, "
        f"{info['wrk']}; load average before the run {facts['load_before'][0]} (1 min)",
        f"- data: {args.users:,} users x {args.tasks_per_user:,} tasks seeded"
        + (" (database reused)" if facts["reused"] else "")
        + f"; {facts['tasks_at_start']:,} tasks ({facts['size']} with indexes) at the start",
        f"- servers: one process each, DATABASE_URL as the {args.db_role} role; wrk 2 threads; "
        f"side by side at {args.connections} connections: {args.warmup:g} s warm-up each, then "
        f"{args.rounds} rounds of floor {args.duration:g} s, API {args.duration:g} s (means "
        f"shown); then the API alone for {args.loaded_duration:g} s at each of "
        f"{', '.join(map(str, loaded)) or 'no higher count'} connections",
        f"- targets: API req/s >= {READ_TARGET}x the floor's for reads, >= {WRITE_TARGET}x "
        f"for writes; API p99 <= {P99_TARGET}x the floor's; no API error (non-2xx or "
        f"socket error) at any connection count. Met by {len(cells) - len(missed)} of "
        f"{len(cells)}.",
        "",
        table(cells, args.connections, loaded),
    ]
    if loaded:
        out += ["", "The API alone at higher connection counts:", "", loaded_table(cells)]
    for label, summary in profiles.items():
        out += ["", f"Profile of the API on `{label}` ({summary['samples']} samples):"]
        out.append("- self time by package: " + _shares(summary["self_by_package"]))
        out.append("- self time by function: " + _shares(summary["self_by_function"][:12]))
        # The server, the loop and the middleware chain enclose nearly every sample;
        # below them are the parts of a request worth comparing.
        parts = [(n, p) for n, p in summary["inclusive"] if p < 40][:15]
        out.append("- inclusive, below the middleware: " + _shares(parts))
    return "\n".join(out)


def _shares(items: list[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {share}%" for name, share in items)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
