"""EXPLAIN (ANALYZE, BUFFERS) of the task queries at scale, as the application role.

    uv run python bench/explain.py --url postgresql://postgres@127.0.0.1:5432/todo_explain \\
        --create --users 950 --tasks-per-user 1000 --heavy-tasks 50000

`--create` drops and recreates that (throwaway, loopback-only) database, migrates it and
seeds it with `bench/seed.py` (lists, tags, priorities, due dates, reminders). Without
`--create` the database is used as it is.

Each query is the statement the service code compiles (`services.task_list_sql`,
`services.reminders`), explained inside a transaction that starts with the app's own
user-context statement (the role `todo_api_app`, `app.user_id`, custom plans for a
search), exactly as a request does, for an ordinary user and for the heaviest one. The
report (plans, the indexes they use and their execution times) is printed and written
to `bench/results/explain-<time>.md`.
The URL's role must be a superuser or BYPASSRLS (seeding uses COPY; see seed.py).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed as seeding

from todo_api.db.database import _CONTEXTS, APP_ROLE
from todo_api.db.statements import Statement, cached
from todo_api.migrations import run_migrations
from todo_api.schemas.tasks import SortOrder, TaskSort, TaskStatus
from todo_api.services.reminders import due_reminders_statement
from todo_api.services.task_list import ListQuery, TaskFilters, list_parameters, shape_of
from todo_api.services.task_list_sql import list_statement

RESULTS = Path(__file__).resolve().parent / "results"
_INDEX = re.compile(
    r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)"
)
_TIME = re.compile(r"Execution Time: ([\d.]+) ms")


@dataclass(frozen=True)
class Explained:
    user: str
    name: str
    plan: str
    indexes: list[str]
    milliseconds: float


def _database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


async def create_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"\w+", name):
        raise SystemExit(f"refusing a database name that needs quoting: {name!r}")
    admin = await asyncpg.connect(_database(url, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()


async def populate(url: str, users: int, tasks_per_user: int, heavy_tasks: int) -> None:
    await run_migrations(url)
    conn = await asyncpg.connect(url)
    try:
        await seeding.seed(
            conn, users=users, tasks_per_user=tasks_per_user, heavy_tasks=heavy_tasks
        )
    finally:
        await conn.close()


def queries(list_id: int, tag: str, now: datetime) -> dict[str, ListQuery]:
    """Name -> the list query of one request (first page, 50 tasks)."""
    today = now.date()

    def page(status: TaskStatus, sort: TaskSort, order: SortOrder, **filters: Any) -> Any:
        return ListQuery(status, sort, order, 50, None, TaskFilters(**filters))

    pending, everything = TaskStatus.pending, TaskStatus.all
    asc, desc = SortOrder.asc, SortOrder.desc
    named = {"default list (created desc)": page(everything, TaskSort.created, desc)}
    defaults = {
        TaskSort.created: desc,
        TaskSort.updated: desc,
        TaskSort.title: asc,
        TaskSort.due_date: asc,
        TaskSort.priority: desc,
        TaskSort.position: asc,
    }
    for sort, order in defaults.items():
        named[f"status=pending sort={sort.value}"] = page(pending, sort, order)
    named["status=pending sort=due_date desc"] = page(pending, TaskSort.due_date, desc)
    named["list_id sort=position"] = page(everything, TaskSort.position, asc, list_id=list_id)
    named["list_id top level, pending"] = page(
        pending, TaskSort.position, asc, list_id=list_id, parent_id=0
    )
    named["one tag (the user's most used)"] = page(everything, TaskSort.created, desc, tags=(tag,))
    named["q=milk"] = page(everything, TaskSort.created, desc, q="milk")
    named["q=passport (rare)"] = page(everything, TaskSort.created, desc, q="passport")
    named["overdue"] = page(pending, TaskSort.due_date, asc, overdue=True)
    named["due this week"] = page(
        pending, TaskSort.due_date, asc, due_after=today, due_before=today + timedelta(days=7)
    )
    return named


async def explain(
    conn: asyncpg.Connection, user_id: str, sql: str, args: list[Any], search: bool
) -> tuple[str, float]:
    async with conn.transaction():
        # As a request: the application role, with this user's context.
        await conn.execute(_CONTEXTS[True, search], user_id, "30000", APP_ROLE)
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
    plan = "\n".join(row[0] for row in rows)
    found = _TIME.search(plan)
    return plan, float(found.group(1)) if found else float("nan")


async def run(url: str) -> list[Explained]:
    conn = await asyncpg.connect(url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM tasks")
        users = await conn.fetch(
            """
            SELECT user_id, task_count FROM profiles
            WHERE task_count > 0 ORDER BY task_count DESC
            """
        )
        heavy = users[0]
        ordinary = users[len(users) // 2]
        print(
            f"{total:,} tasks; heaviest user {heavy['task_count']:,} tasks, "
            f"ordinary user {ordinary['task_count']:,}"
        )
        now = datetime.now(UTC)
        results = []
        for label, row in (("ordinary", ordinary), ("heaviest", heavy)):
            user_id = row["user_id"]
            list_id = await conn.fetchval(
                "SELECT id FROM lists WHERE user_id = $1 ORDER BY id LIMIT 1", user_id
            )
            tag = await conn.fetchval(
                """
                SELECT tags.name FROM tags
                JOIN task_tags ON task_tags.user_id = tags.user_id AND task_tags.tag_id = tags.id
                WHERE tags.user_id = $1
                GROUP BY tags.id, tags.name ORDER BY count(*) DESC, tags.id LIMIT 1
                """,
                user_id,
            )
            statements: dict[str, tuple[str, list[Any], bool]] = {}
            for name, query in queries(list_id or 0, tag or "untagged", now).items():
                compiled = cached(list_statement, shape_of(query, None))
                args = compiled.arguments(list_parameters(user_id, query))
                statements[name] = (compiled.sql, args, query.filters.q is not None)
            reminders = Statement(due_reminders_statement(user_id, now, 50), render_values=True)
            statements["due reminders"] = (reminders.sql, reminders.arguments(None), False)
            for name, (sql, args, search) in statements.items():
                await explain(conn, user_id, sql, args, search)  # warm the cache, as in production
                plan, ms = await explain(conn, user_id, sql, args, search)
                indexes = sorted(set(_INDEX.findall(plan)))
                results.append(Explained(label, name, plan, indexes, ms))
        return results
    finally:
        await conn.close()


def report(results: list[Explained]) -> str:
    lines = ["| user | query | indexes used | execution |", "|---|---|---|---|"]
    for item in results:
        lines.append(
            f"| {item.user} | {item.name} | {', '.join(item.indexes) or 'none'} | "
            f"{item.milliseconds:.2f} ms |"
        )
    summary = "\n".join(lines)
    plans = "\n\n".join(f"### {r.user}: {r.name}\n\n```\n{r.plan}\n```" for r in results)
    return f"# EXPLAIN (ANALYZE, BUFFERS)\n\n{summary}\n\n## Plans\n\n{plans}\n"


async def main(args: argparse.Namespace) -> None:
    seeding.require_loopback(args.url)
    if args.create:
        await create_database(args.url)
        await populate(args.url, args.users, args.tasks_per_user, args.heavy_tasks)
    results = await run(args.url)
    text = report(results)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"explain-{stamp}.md"
    out.write_text(text)
    print(text.split("## Plans")[0])
    print(f"plans: {out}")


def cli(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", required=True, help="superuser/BYPASSRLS URL, loopback only")
    parser.add_argument("--create", action="store_true", help="drop, create, migrate, seed")
    parser.add_argument("--users", type=int, default=950)
    parser.add_argument("--tasks-per-user", type=int, default=1000)
    parser.add_argument("--heavy-tasks", type=int, default=50_000)
    asyncio.run(main(parser.parse_args(argv)))


if __name__ == "__main__":
    cli(sys.argv[1:])
