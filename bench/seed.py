"""Load N users x M tasks (plus an optional heavy user) into a bench database with COPY.

    uv run python bench/seed.py --url postgresql://postgres@127.0.0.1:5432/todo_bench \\
        --users 200 --tasks-per-user 1000 --users-file bench/results/users.tsv

The tables have FORCE ROW LEVEL SECURITY, and PostgreSQL refuses `COPY FROM` into a
table whose row-level security applies to the copying role, even its owner. So the
seeding connection must be a superuser or a BYPASSRLS role; `bench/run.py` uses the
machine's `postgres` superuser on the throwaway bench database it created. The app's
own roles are never given that power.

The data is shaped like real use: tasks created over several months and interleaved
across users (ids grow with `created_at`, so one user's rows are spread over the heap as
they would be), varied titles, descriptions on about half, older tasks more often
completed, `completed_at`/`updated_at` consistent with `created_at`, and a profile row
per user. The full task model is filled in too: each user has 0-4 lists and 2-8 tags;
about half the tasks sit in a list, 45% carry 1-3 tags, 35% have a due date (an all-day
date, its `due_sort_at` the start of that day in the profile's time zone, or a due
instant), some of those a reminder, and priorities are spread over none/low/medium/high.
Positions come from the schema's default (the sequence new tasks use), and the profile
counters (`task_count`, `list_count`, `tag_count`) from the schema's triggers, which
stay on. Recurrences are not seeded: completing a recurring task creates the next
occurrence in Python (`services/recurrence.py`), which the floor does not reimplement.
Everything comes from one seeded random generator, so a size is reproducible.

The users file has one line per user, `user_id token tag id id ...`, which the wrk
script reads: the token is an HS256 JWT for the user, valid for six hours, the tag the
one on most of the user's tasks, the ids a random sample of the user's tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as day_start
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import jwt

from todo_api.schemas.values import tag_key

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_VERBS = (
    "Buy", "Call", "Email", "Review", "Fix", "Write", "Plan", "Book", "Pay", "Clean",
    "Schedule", "Prepare", "Update", "Read", "Renew", "Cancel", "Return", "Order", "Send",
    "Finish", "Draft", "Check", "Organise", "Pick up", "Submit", "Research", "Backup",
    "Refactor", "Test", "Deploy", "Water", "Repair", "Sort out", "Follow up on", "Print",
)  # fmt: skip
_OBJECTS = (
    "milk", "groceries", "the dentist", "the quarterly report", "car insurance",
    "the electricity bill", "passport renewal form", "birthday present", "team offsite",
    "the garage", "tax return", "library books", "the plumber", "slides for Monday",
    "release notes", "the landlord", "train tickets", "running shoes", "the vet",
    "photo album", "budget spreadsheet", "onboarding checklist", "the roof gutters",
    "dinner reservation", "conference talk", "bike tyres", "the router", "the kitchen",
    "invoice", "meeting notes", "design doc", "flight to Lisbon", "hotel in Berlin",
    "school forms", "the plants", "expense claim", "CV", "wedding RSVP", "gym membership",
    "database migration", "flaky test", "on-call handover", "laptop", "winter tyres",
)  # fmt: skip
_SUFFIXES = (
    "", "", "", "", " before Friday", " this week", " tomorrow", " for Sam", " for Alex",
    " (urgent)", " again", " with Priya", " after lunch", " for the trip", " - part 2",
)  # fmt: skip
_SENTENCES = (
    "Remember to bring the receipt.",
    "Ask about the weekend opening hours.",
    "The reference number is in the email from last Tuesday.",
    "Compare at least three offers before deciding.",
    "Only the oat one, not the soy one.",
    "Check whether the warranty still covers it.",
    "Needs sign-off from finance first.",
    "Blocked until the supplier answers.",
    "Split the work into two sessions if it takes too long.",
    "Put the result in the shared folder and tell the team.",
    "Last time this took about an hour.",
    "Use the new template, the old one is deprecated.",
    "Do not forget the attachments.",
    "Keep it short; two pages at most.",
    "Cash only, apparently.",
)
_NAMES = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas")
_ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London")
_LIST_NAMES = ("Work", "Home", "Errands", "Side project", "Reading list", "Holiday")
_TAG_NAMES = (
    "home", "work", "urgent", "errand", "phone", "computer", "waiting", "someday",
    "health", "finance", "Family", "Q4", "garden", "kids",
)  # fmt: skip
#: Priority ranks (none, low, medium, high) and how often each occurs.
_PRIORITY_WEIGHTS = (55, 15, 20, 10)
_ID_ALPHABET = string.ascii_letters + string.digits
#: Above this many tasks, secondary indexes are dropped and rebuilt around the COPY.
BULK_ROWS = 50_000

#: Columns in COPY order; the id is given explicitly so the sample ids are known
#: without a query, and the identity sequence is moved past them afterwards.
TASK_COLUMNS = (
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "completed_at",
    "created_at",
    "updated_at",
    "priority",
    "due_date",
    "due_at",
    "due_sort_at",
    "remind_at",
    "list_id",
)
PROFILE_COLUMNS = ("user_id", "display_name", "timezone", "created_at", "updated_at")
LIST_COLUMNS = ("id", "user_id", "name", "created_at", "updated_at")
TAG_COLUMNS = ("id", "user_id", "name", "name_key", "created_at")
TASK_TAG_COLUMNS = ("user_id", "task_id", "tag_id")


def require_loopback(url: str) -> None:
    """Refuse any database URL that does not point at this machine's loopback interface."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"refusing to touch a database that is not on loopback: host {host!r}")


@dataclass
class SeedUser:
    """A seeded user: its id, whether it is the heavy one, and a sample of its task ids."""

    user_id: str
    heavy: bool = False
    sample: list[int] = field(default_factory=list)
    count: int = 0
    zone: str = "UTC"
    lists: list[int] = field(default_factory=list)
    tags: list[int] = field(default_factory=list)
    #: The name of the tag on most of its tasks.
    top_tag: str = ""


@dataclass(frozen=True)
class SeedResult:
    users: list[SeedUser]
    tasks: int
    seconds: float
    copy_seconds: float
    vacuum_seconds: float


async def _drop_secondary_indexes(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drop the indexes no constraint needs; returns their exact definitions to rebuild.

    Building an index once over the loaded rows is several times faster than updating it
    row by row during COPY (a trigram GIN index most of all). Indexes behind primary key,
    unique and exclusion constraints stay: foreign keys and conflict checks use them.
    """
    rows = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i
        WHERE i.indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        table,
    )
    for row in rows:
        await conn.execute(f"DROP INDEX {row['name']}")
    return [row["definition"] for row in rows]


def _user_id(rng: random.Random) -> str:
    # Shaped like Better Auth's ids: 32 random alphanumerics.
    return "".join(rng.choices(_ID_ALPHABET, k=32))


def _title(rng: random.Random) -> str:
    title = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_SUFFIXES)}"
    if rng.random() < 0.15:
        title += f" #{rng.randint(1, 999)}"
    return title


def _description(rng: random.Random) -> str | None:
    if rng.random() < 0.45:
        return None
    return " ".join(rng.sample(_SENTENCES, rng.randint(1, 3)))


def _task_rows(
    users: list[SeedUser],
    owners: list[int],
    first_id: int,
    start: datetime,
    span: timedelta,
    now: datetime,
    sample_size: int,
    rng: random.Random,
    task_tags: list[tuple[str, int, int]],
) -> Iterator[tuple[object, ...]]:
    """Task records in id order; fills each user's reservoir sample of ids, and
    `task_tags`, on the way."""
    zones = {name: ZoneInfo(name) for name in _ZONES}
    total = len(owners)
    step = span / max(total, 1)
    jitter = min(step.total_seconds(), 60.0)
    for i, owner in enumerate(owners):
        task_id = first_id + i
        user = users[owner]
        user.count += 1
        if len(user.sample) < sample_size:
            user.sample.append(task_id)
        else:
            slot = rng.randrange(user.count)
            if slot < sample_size:
                user.sample[slot] = task_id
        created_at = start + step * i + timedelta(seconds=rng.random() * jitter)
        age = (now - created_at) / span  # 0 (new) .. 1 (oldest)
        completed = rng.random() < 0.15 + 0.6 * age
        completed_at = None
        updated_at = created_at
        if completed:
            completed_at = min(created_at + timedelta(hours=rng.expovariate(1 / 72)), now)
            updated_at = completed_at
        elif rng.random() < 0.2:
            updated_at = min(created_at + timedelta(hours=rng.expovariate(1 / 24)), now)
        priority = rng.choices(range(4), _PRIORITY_WEIGHTS)[0]
        due_date = due_at = due_sort_at = remind_at = None
        if rng.random() < 0.35:
            if rng.random() < 0.6:  # all day: starts at midnight in the profile's zone
                due_date = (created_at + timedelta(days=rng.randint(-3, 30))).date()
                due_sort_at = datetime.combine(due_date, day_start(), zones[user.zone])
            else:
                due_at = created_at + timedelta(hours=rng.randint(1, 24 * 30))
                due_sort_at = due_at
            if rng.random() < 0.3:
                remind_at = due_sort_at - timedelta(hours=1)
        list_id = rng.choice(user.lists) if user.lists and rng.random() < 0.5 else None
        if user.tags and rng.random() < 0.45:
            for tag_id in rng.sample(user.tags, min(len(user.tags), rng.randint(1, 3))):
                task_tags.append((user.user_id, task_id, tag_id))
        yield (
            task_id,
            user.user_id,
            _title(rng),
            _description(rng),
            completed,
            completed_at,
            created_at,
            updated_at,
            priority,
            due_date,
            due_at,
            due_sort_at,
            remind_at,
            list_id,
        )


async def _next_id(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT coalesce(max(id), 0) + 1 FROM {table}"))


async def _move_sequence(conn: asyncpg.Connection, table: str, last: int) -> None:
    if last > 0:
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), $1)", last)


async def seed(
    conn: asyncpg.Connection,
    *,
    users: int,
    tasks_per_user: int,
    heavy_tasks: int = 0,
    months: int = 9,
    sample_size: int = 20,
    random_seed: int = 1,
    log: bool = True,
) -> SeedResult:
    """Append users and their tasks with COPY, then VACUUM ANALYZE; returns what was loaded.

    `conn` must bypass row-level security (superuser or BYPASSRLS): COPY into a table
    whose policies apply to the copying role is refused by PostgreSQL.
    """
    bypasses = await conn.fetchval(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    if not bypasses:
        raise SystemExit(
            "seeding needs a superuser or BYPASSRLS connection: PostgreSQL refuses COPY "
            "into a table with FORCE ROW LEVEL SECURITY otherwise"
        )
    started = time.perf_counter()
    rng = random.Random(random_seed)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    span = timedelta(days=30 * months)
    start = now - span

    people = [SeedUser(_user_id(rng)) for _ in range(users)]
    if heavy_tasks:
        people.append(SeedUser(_user_id(rng), heavy=True))
    owners = [index for index in range(users) for _ in range(tasks_per_user)]
    if heavy_tasks:
        owners += [users] * heavy_tasks
    # Interleaved in time across users, as real sign-ups and task creation would be.
    rng.shuffle(owners)

    first_id = await _next_id(conn, "tasks")
    list_id, tag_id = await _next_id(conn, "lists"), await _next_id(conn, "tags")
    profile_rows, list_rows, tag_rows = [], [], []
    for index, person in enumerate(people):
        joined = start - timedelta(days=rng.random() * 30)
        name = _NAMES[index % len(_NAMES)] if rng.random() < 0.7 else None
        person.zone = rng.choice(_ZONES)
        profile_rows.append((person.user_id, name, person.zone, joined, joined))
        for list_name in rng.sample(_LIST_NAMES, rng.randint(0, 4)):
            person.lists.append(list_id)
            list_rows.append((list_id, person.user_id, list_name, joined, joined))
            list_id += 1
        for tag_name in rng.sample(_TAG_NAMES, rng.randint(2, 8)):
            person.tags.append(tag_id)
            tag_rows.append((tag_id, person.user_id, tag_name, tag_key(tag_name), joined))
            tag_id += 1
    task_tags: list[tuple[str, int, int]] = []

    copy_started = time.perf_counter()
    # Triggers stay on (no replica mode): the schema keeps derived data such as per-user
    # counters in triggers, and a seed that skipped them would load an inconsistent
    # database. One transaction: a failed load leaves the database as it was.
    async with conn.transaction():
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        await conn.copy_records_to_table(
            "profiles", records=profile_rows, columns=list(PROFILE_COLUMNS)
        )
        await conn.copy_records_to_table("lists", records=list_rows, columns=list(LIST_COLUMNS))
        await conn.copy_records_to_table("tags", records=tag_rows, columns=list(TAG_COLUMNS))
        bulk = len(owners) > BULK_ROWS
        rebuild = await _drop_secondary_indexes(conn, "tasks") if bulk else []
        rebuild += await _drop_secondary_indexes(conn, "task_tags") if bulk else []
        await conn.copy_records_to_table(
            "tasks",
            records=_task_rows(
                people, owners, first_id, start, span, now, sample_size, rng, task_tags
            ),
            columns=list(TASK_COLUMNS),
        )
        await conn.copy_records_to_table(
            "task_tags", records=task_tags, columns=list(TASK_TAG_COLUMNS)
        )
        copy_seconds = time.perf_counter() - copy_started
        for definition in rebuild:
            await conn.execute(definition)
        await _move_sequence(conn, "tasks", first_id + len(owners) - 1)
        await _move_sequence(conn, "lists", list_id - 1)
        await _move_sequence(conn, "tags", tag_id - 1)
    index_seconds = time.perf_counter() - copy_started - copy_seconds
    names = {row[0]: row[2] for row in tag_rows}
    uses = Counter(tag for _, _, tag in task_tags)
    for person in people:
        if person.tags:
            person.top_tag = names[max(person.tags, key=lambda tag: (uses[tag], -tag))]
    if log:
        print(
            f"  copied {len(owners):,} tasks ({len(task_tags):,} tag links, "
            f"{len(list_rows):,} lists, {len(tag_rows):,} tags) for {len(people):,} users "
            f"in {copy_seconds:.1f} s"
        )
        if rebuild:
            print(f"  rebuilt {len(rebuild)} indexes in {index_seconds:.1f} s")

    vacuum_started = time.perf_counter()
    # Fresh statistics and a visibility map, as a long-running database would have.
    for table in ("profiles", "lists", "tags", "tasks", "task_tags"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    vacuum_seconds = time.perf_counter() - vacuum_started
    if log:
        print(f"  vacuum analyze in {vacuum_seconds:.1f} s")
    return SeedResult(
        users=people,
        tasks=len(owners),
        seconds=time.perf_counter() - started,
        copy_seconds=copy_seconds,
        vacuum_seconds=vacuum_seconds,
    )


def make_token(secret: str, user_id: str, ttl: int, index: int) -> str:
    """An HS256 token shaped like one from Better Auth's JWT plugin (the user row as claims)."""
    now = int(time.time())
    name = _NAMES[index % len(_NAMES)]
    claims = {
        "sub": user_id,
        "id": user_id,
        "email": f"{name.lower()}.{index}@example.com",
        "emailVerified": True,
        "name": name,
        "image": None,
        "createdAt": "2026-01-05T10:00:00.000Z",
        "updatedAt": "2026-01-05T10:00:00.000Z",
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def write_users_file(path: Path, users: list[SeedUser], secret: str, ttl: int = 6 * 3600) -> None:
    """One line per user: `user_id token tag id id ...`, for the wrk script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for index, user in enumerate(users):
            token = make_token(secret, user.user_id, ttl, index)
            fields = [user.user_id, token, user.top_tag or "-", *map(str, user.sample)]
            handle.write(" ".join(fields) + "\n")


def refresh_tokens(path: Path, secret: str, ttl: int = 6 * 3600) -> None:
    """Sign new tokens into an existing users file (a reused database outlives its tokens)."""
    lines = []
    for index, line in enumerate(path.read_text().splitlines()):
        user_id, _, tag, *ids = line.split()
        lines.append(" ".join([user_id, make_token(secret, user_id, ttl, index), tag, *ids]))
    path.write_text("\n".join(lines) + "\n")


async def _main(args: argparse.Namespace) -> None:
    require_loopback(args.url)
    conn = await asyncpg.connect(args.url)
    try:
        result = await seed(
            conn,
            users=args.users,
            tasks_per_user=args.tasks_per_user,
            heavy_tasks=args.heavy_tasks,
            random_seed=args.random_seed,
        )
    finally:
        await conn.close()
    print(f"seeded {result.tasks:,} tasks in {result.seconds:.1f} s")
    if args.users_file:
        write_users_file(Path(args.users_file), result.users, args.secret)
        print(f"users file: {args.users_file}")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="superuser/BYPASSRLS URL, loopback only")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tasks-per-user", type=int, default=1000)
    parser.add_argument("--heavy-tasks", type=int, default=0, help="one extra user with this many")
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--users-file", help="write tokens and task ids here for wrk")
    parser.add_argument(
        "--secret",
        default="bench-only-jwt-secret-not-for-production-0123456789",
        help="JWT_SECRET the server under test uses",
    )
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main(sys.argv[1:])
