"""First-page latency at 10,000 and at 1,050,000 tasks, ordinary users and one heavy user.

    uv run python bench/scale.py --url postgresql://postgres@127.0.0.1:5432/todo_scale --create

Two databases are measured, named after the URL's: `<name>_10k` (by default 100 users x
100 tasks) and `<name>_1m` (10,000 users x 100 tasks plus one user with 50,000). Both are
seeded by `bench/seed.py`, so an ordinary user has the same number and shape of tasks in
both: the comparison isolates the size of the tables. `--create` drops, creates, migrates
and seeds them (throwaway, loopback-only databases; the large seed takes a few
minutes); without it they are used as they are.

Each run is one request's transaction, as the app issues it: `BEGIN`, the app's
user-context statement (application role, `app.user_id`, statement timeout; for a
search, also `plan_cache_mode = force_custom_plan`, as the app sets it), the list
statement the service compiles for that page (`task_list_sql.list_statement`), `COMMIT`; the time is that of the list statement. Ordinary users are a fixed sample of
50, one after another; the heavy user is the same every time. Sizes and users are
interleaved run by run, so background load on the machine falls on every column alike.

Plans are measured both ways the app can get them (`--plans`): `cached`, asyncpg's
statement cache as on a direct connection, where PostgreSQL may switch a statement to a
generic plan (made without the parameters' values) after five executions; and `fresh`,
no statement cache as behind PgBouncer or Neon's pooler, every execution planned for
its values (and paying for the planning).

Medians (and p95) are reported, with the ratios 1M/10k (ordinary users) and
heavy/ordinary (1M), in tables printed and written to `bench/results/scale-<time>.md`.
The heavy user is measured twice: with the page size asked for (its pages are full
where an ordinary user's hold a few tasks, e.g. due this week), and with the number of
tasks the ordinary user's page held in the same round, which isolates what a large
account costs in finding a page from the cost of sending more rows.
The URL's role must be a superuser or BYPASSRLS (seeding uses COPY; see seed.py).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed as seeding
from explain import create_database

from todo_api.db.database import _CONTEXTS, APP_ROLE
from todo_api.db.statements import cached
from todo_api.migrations import run_migrations
from todo_api.schemas.tasks import SortOrder, TaskSort, TaskStatus
from todo_api.services.task_list import ListQuery, TaskFilters, list_parameters, shape_of
from todo_api.services.task_list_sql import list_statement

RESULTS = Path(__file__).resolve().parent / "results"
LIMIT = 50
SAMPLE = 50


@dataclass(frozen=True)
class Target:
    """One column of the table: a database and the users whose pages it asks for."""

    label: str
    url: str
    users: list[User]
    #: Ask for as many tasks as the page of this (earlier) target's user held in the
    #: same round: the heavy user's page at an ordinary user's size, so that what is
    #: compared is the cost of finding the page, not of returning more rows.
    rows_of: str | None = None


@dataclass(frozen=True)
class User:
    user_id: str
    tasks: int
    tag: str


@dataclass
class Timings:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def add(self, query: str, target: str, ms: float, rows: int) -> None:
        self.samples.setdefault((query, target), []).append(ms)
        self.rows.setdefault((query, target), []).append(rows)

    def median(self, query: str, target: str) -> float:
        return statistics.median(self.samples[(query, target)])

    def p95(self, query: str, target: str) -> float:
        return statistics.quantiles(self.samples[(query, target)], n=20)[18]

    def page(self, query: str, target: str) -> int:
        """The median number of tasks on the page (a page holds at most `LIMIT`)."""
        return min(LIMIT, int(statistics.median(self.rows[(query, target)])))


def _database(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def queries(q: str) -> dict[str, Callable[[User], ListQuery]]:
    """Name -> the first-page query of one request, for a given user."""
    today = datetime.now(UTC).date()

    def page(status: TaskStatus, sort: TaskSort, order: SortOrder, **filters: Any) -> ListQuery:
        return ListQuery(status, sort, order, LIMIT, None, TaskFilters(**filters))

    everything, pending = TaskStatus.all, TaskStatus.pending
    return {
        "default list": lambda _: page(everything, TaskSort.created, SortOrder.desc),
        "status=pending&sort=title": lambda _: page(pending, TaskSort.title, SortOrder.asc),
        "one tag (the user's most used)": lambda user: page(
            everything, TaskSort.created, SortOrder.desc, tags=(user.tag,)
        ),
        "sort=position": lambda _: page(everything, TaskSort.position, SortOrder.asc),
        "due this week (pending)": lambda _: page(
            pending,
            TaskSort.due_date,
            SortOrder.asc,
            due_after=today,
            due_before=today + timedelta(days=7),
        ),
        f"q={q}": lambda _: page(everything, TaskSort.created, SortOrder.desc, q=q),
    }


def statement(user_id: str, query: ListQuery) -> tuple[str, list[Any]]:
    """The SQL and arguments the service runs for this page (its compiled `Statement`)."""
    compiled = cached(list_statement, shape_of(query, None))
    return compiled.sql, compiled.arguments(list_parameters(user_id, query))


async def one_request(conn: asyncpg.Connection, user: User, query: ListQuery) -> tuple[float, int]:
    """One request's transaction: the list statement's time in milliseconds, and rows.

    The context is the app's for a URL that owns the tables (a role switch), with
    custom plans for a search, as `Database.transaction` sets it."""
    sql, args = statement(user.user_id, query)
    context = _CONTEXTS[True, query.filters.q is not None]
    async with conn.transaction():
        await conn.execute(context, user.user_id, "30000", APP_ROLE)
        started = time.perf_counter()
        rows = await conn.fetch(sql, *args)
        return (time.perf_counter() - started) * 1000, len(rows)


async def create(url: str, users: int, tasks_per_user: int, heavy_tasks: int) -> None:
    seeding.require_loopback(url)
    await create_database(url)
    await run_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        await seeding.seed(
            conn, users=users, tasks_per_user=tasks_per_user, heavy_tasks=heavy_tasks
        )
    finally:
        await conn.close()


async def pick_users(url: str) -> tuple[list[User], User | None, int]:
    """A fixed sample of ordinary users, the heavy user if there is one, and the task count."""
    conn = await asyncpg.connect(url)
    try:
        total = int(await conn.fetchval("SELECT count(*) FROM tasks"))
        rows = await conn.fetch(
            "SELECT user_id, task_count FROM profiles WHERE task_count > 0 "
            "ORDER BY task_count DESC, user_id"
        )
        typical = rows[len(rows) // 2]["task_count"]
        heavy_row = rows[0] if rows[0]["task_count"] >= 10 * typical else None
        ordinary = [r for r in rows if r is not heavy_row]
        chosen = random.Random(1).sample(ordinary, min(SAMPLE, len(ordinary)))

        async def user(row: asyncpg.Record) -> User:
            tag = await conn.fetchval(
                """
                SELECT tags.name FROM tags
                JOIN task_tags ON task_tags.user_id = tags.user_id AND task_tags.tag_id = tags.id
                WHERE tags.user_id = $1
                GROUP BY tags.id, tags.name ORDER BY count(*) DESC, tags.id LIMIT 1
                """,
                row["user_id"],
            )
            return User(row["user_id"], row["task_count"], tag or "untagged")

        sample = [await user(row) for row in chosen]
        heavy = await user(heavy_row) if heavy_row is not None else None
        return sample, heavy, total
    finally:
        await conn.close()


async def measure(
    targets: list[Target],
    named: dict[str, Callable[[User], ListQuery]],
    runs: int,
    warmup: int,
    cached: bool,
) -> Timings:
    cache = {} if cached else {"statement_cache_size": 0}
    connections = {t.label: await asyncpg.connect(t.url, **cache) for t in targets}
    timings = Timings()
    try:
        for name, build in named.items():
            for run in range(warmup + runs):
                # Interleaved: each round asks every target once.
                fetched: dict[str, int] = {}
                for target in targets:
                    user = target.users[run % len(target.users)]
                    conn = connections[target.label]
                    query = build(user)
                    if target.rows_of is not None:
                        shown = min(query.limit, fetched[target.rows_of])
                        query = dataclasses.replace(query, limit=max(1, shown))
                    ms, rows = await one_request(conn, user, query)
                    fetched[target.label] = rows
                    if run >= warmup:
                        timings.add(name, target.label, ms, rows)
            print(f"  measured {name} ({'cached' if cached else 'fresh'} plans)", flush=True)
    finally:
        for conn in connections.values():
            await conn.close()
    return timings


def table(
    timings: Timings,
    names: list[str],
    small: str,
    large: str,
    heavy: str | None,
    same_rows: str | None,
) -> str:
    head = f"| query | {small} | {large} | 1M / 10k |"
    rule = "|---|---|---|---|"
    if heavy is not None:
        head += f" {heavy} | heavy / ordinary |"
        rule += "---|---|"
    if same_rows is not None:
        head += f" {same_rows} | same rows: heavy / ordinary |"
        rule += "---|---|"
    lines = [head, rule]

    def cell(name: str, target: str) -> str:
        median, p95 = timings.median(name, target), timings.p95(name, target)
        return f"{median:.2f} ms ({p95:.2f}), {timings.page(name, target)} rows"

    for name in names:
        ratio = timings.median(name, large) / timings.median(name, small)
        line = f"| {name} | {cell(name, small)} | {cell(name, large)} | {ratio:.2f}x |"
        for other in (heavy, same_rows):
            if other is not None:
                against = timings.median(name, other) / timings.median(name, large)
                line += f" {cell(name, other)} | {against:.2f}x |"
        lines.append(line)
    return "\n".join(lines) + "\n"


async def main(args: argparse.Namespace, argv: list[str]) -> None:
    seeding.require_loopback(args.url)
    small_url, large_url = _database(args.url, "_10k"), _database(args.url, "_1m")
    if args.create:
        print(f"creating {small_url}")
        await create(small_url, args.small_users, args.tasks_per_user, 0)
        print(f"creating {large_url}")
        await create(large_url, args.users, args.tasks_per_user, args.heavy_tasks)
    small_users, _, small_total = await pick_users(small_url)
    large_users, heavy, large_total = await pick_users(large_url)
    small = f"10k: ordinary ({small_total:,} tasks)"
    large = f"1M: ordinary ({large_total:,} tasks)"
    targets = [Target(small, small_url, small_users), Target(large, large_url, large_users)]
    heavy_label = same_rows = None
    if heavy is not None:
        heavy_label = f"1M: heavy ({heavy.tasks:,} tasks)"
        same_rows = "1M: heavy, ordinary's page size"
        targets.append(Target(heavy_label, large_url, [heavy]))
        targets.append(Target(same_rows, large_url, [heavy], rows_of=large))
    named = queries(args.q)
    modes = ["cached", "fresh"] if args.plans == "both" else [args.plans]
    tables = []
    for mode in modes:
        timings = await measure(targets, named, args.runs, args.warmup, mode == "cached")
        title = {"cached": "Cached plans (direct connection)", "fresh": "Fresh plans (pooler)"}
        tables.append(
            f"## {title[mode]}\n\n"
            + table(timings, list(named), small, large, heavy_label, same_rows)
        )
    server = await _server_version(large_url)
    header = [
        f"command: `uv run python bench/scale.py {shlex.join(argv)}`",
        f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {server}",
        f"{args.runs} measured runs per cell after {args.warmup} warm-up runs; page size {LIMIT}",
        f"ordinary users: {len(small_users)} (10k) and {len(large_users)} (1M) sampled, "
        f"{small_users[0].tasks} tasks each; the one-tag query uses each user's most used tag",
    ]
    notes = "\n".join(f"- {line}" for line in header)
    text = (
        f"# First-page latency at scale\n\n{notes}\n\n"
        "Median (p95) of the list statement's time per request, in milliseconds, and "
        "the median number of tasks on the page.\n\n" + "\n".join(tables)
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"scale-{stamp}.md"
    out.write_text(text)
    print(text)
    print(f"written: {out}")


async def _server_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT split_part(version(), ' on ', 1)"))
    finally:
        await conn.close()


def cli(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--url", required=True, help="superuser/BYPASSRLS URL, loopback only; names the databases"
    )
    parser.add_argument("--create", action="store_true", help="drop, create, migrate, seed both")
    parser.add_argument("--small-users", type=int, default=100, help="users at 10k")
    parser.add_argument("--users", type=int, default=10_000, help="ordinary users at 1M")
    parser.add_argument("--tasks-per-user", type=int, default=100)
    parser.add_argument("--heavy-tasks", type=int, default=50_000, help="the heavy user, at 1M")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--q", default="milk", help="the search term")
    parser.add_argument(
        "--plans", choices=["cached", "fresh", "both"], default="both", help="see above"
    )
    asyncio.run(main(parser.parse_args(argv), argv))


if __name__ == "__main__":
    cli()
