"""The change feed: what changed in a user's tasks, lists and tags since a cursor.

Recording happens in the database (migration 0003): triggers on tasks, lists and tags
append one `changes` row per inserted, updated or deleted row, in the writing
transaction, numbered from `profiles.change_seq`.

Why a per-user counter under the profile row lock, and not a global sequence: a
sequence value is taken when a statement runs, not when its transaction commits, so a
reader could see seq 8 committed while seq 7 is still in flight, move its cursor past
7 and never see it. The trigger takes the next number with `UPDATE profiles ...
RETURNING`, which keeps the profile row locked until the writer commits; the next
writer of the same user waits for that lock, so one user's numbers become visible in
order and a cursor can never skip one. The price is that one user's writes are
serialised, which they largely were already (quotas, moves); different users never
wait for each other.

A cursor is `(epoch, seq)`, signed with the user id. The epoch is the profile's
creation time: erasing the account deletes the profile and its feed, so a cursor from
before the erase no longer matches and gets 410 (the client resyncs to an empty
account) instead of silently missing the deletions.

Retention: entries older than `CHANGES_RETENTION_DAYS` are purged lazily, a bounded
prefix at a time, by feed reads and by idempotency-key claims. Purging always deletes
a prefix of the sequence, so "the cursor is older than the oldest entry kept" is exactly
"something after the cursor is gone", and such a cursor gets 410.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Integer, Text, bindparam, select, text

from todo_api.db.database import Session
from todo_api.db.statements import Row, Statement
from todo_api.errors import Gone
from todo_api.models import lists_table as lst
from todo_api.models import tags_table as tg
from todo_api.models import tasks_table as t
from todo_api.services import clock
from todo_api.services.cursors import CursorCodec
from todo_api.services.lists import LIST_COLUMNS
from todo_api.services.tags import with_count
from todo_api.services.tasks import readable

#: Entries looked at per purge: keeps every purge (and the scan that finds it) bounded.
PURGE_BATCH = 100
_BINDING = ["changes"]

#: The expired prefix of the user's feed, as the statement `purge_upto` below reports it.
_EXPIRED = """
    expired AS (
        SELECT max(seq) AS upto FROM (
            SELECT seq, changed_at FROM changes WHERE user_id = :user_id
            ORDER BY seq LIMIT :batch
        ) AS oldest
        WHERE changed_at < :cutoff
    ),
    purged AS (
        DELETE FROM changes
        WHERE user_id = :user_id AND seq <= (SELECT upto FROM expired)
    )
"""

_FEED = Statement(
    text(
        f"""
    WITH {_EXPIRED},
    page AS (
        SELECT seq, kind, object_id, op, reason, version FROM changes
        WHERE user_id = :user_id AND seq > :since
        ORDER BY seq LIMIT :limit
    )
    SELECT (SELECT change_seq FROM profiles WHERE user_id = :user_id) AS change_seq,
           (SELECT created_at FROM profiles WHERE user_id = :user_id) AS epoch,
           (SELECT min(seq) FROM changes WHERE user_id = :user_id) AS min_seq,
           (SELECT upto FROM expired) AS purged_upto,
           (SELECT coalesce(json_agg(json_build_array(seq, kind, object_id, op, reason, version)
                                     ORDER BY seq), '[]')
            FROM page)::text AS page
    """  # noqa: S608 (only constants are interpolated)
    ).bindparams(
        bindparam("user_id", type_=Text),
        bindparam("since", type_=BigInteger),
        bindparam("limit", type_=Integer),
        bindparam("batch", type_=Integer),
        bindparam("cutoff", type_=DateTime(timezone=True)),
    )
)


def purge_statement() -> str:
    """CTEs (for a larger statement) purging the user's expired feed prefix; they need
    `:user_id`, `:batch` and `:cutoff`."""
    return _EXPIRED


def cutoff(retention_days: int) -> datetime:
    return clock.now() - timedelta(days=retention_days)


def cursor_expired() -> Gone:
    return Gone(
        "This cursor is older than the change history kept (or the account was erased): "
        "list everything again, then follow the feed from a fresh cursor "
        "(`GET /changes` without `since`).",
        code="cursor_expired",
    )


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    object_id: int
    op: str
    reason: str
    version: int


@dataclass(frozen=True)
class FeedPage:
    #: Each changed object once, at its latest change, with its current state (None for
    #: a deletion).
    changes: list[tuple[Entry, Row | None]]
    next_cursor: str
    has_more: bool
    #: The account's epoch, for `cursor_at`.
    epoch: str | None = None


def cursor_at(codec: CursorCodec, user_id: str, page: FeedPage, seq: int) -> str:
    """The cursor just after entry `seq` of `page` (what a stream sends as an event id)."""
    return codec.encode(user_id, _BINDING, [page.epoch, seq])


def _epoch(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def read_feed(
    session: Session,
    user_id: str,
    since: str | None,
    limit: int,
    codec: CursorCodec,
    retention_days: int,
) -> FeedPage:
    """The changes after `since` (at most `limit` entries before collapsing), or, without
    `since`, no changes and a cursor for now."""
    epoch: str | None = None
    seq = 0
    if since is not None:
        epoch, seq = codec.decode(user_id, since, _BINDING)
        if epoch is not None and not isinstance(epoch, str):
            raise cursor_expired()
    params = {
        "user_id": user_id,
        "since": seq,
        "limit": limit + 1,
        "batch": PURGE_BATCH,
        "cutoff": cutoff(retention_days),
    }
    row = (await session.execute(_FEED, params)).mappings().one()
    current_epoch = _epoch(row["epoch"])
    last = int(row["change_seq"] or 0)
    if since is None:
        return FeedPage([], codec.encode(user_id, _BINDING, [current_epoch, last]), False)

    # A cursor taken before the account had a profile (nothing to miss yet) follows the
    # account from its first change; any other epoch is a previous account.
    if epoch != current_epoch and (epoch is not None or seq != 0):
        raise cursor_expired()
    floor = last if row["min_seq"] is None else int(row["min_seq"]) - 1
    if row["purged_upto"] is not None:
        floor = max(floor, int(row["purged_upto"]))
    if seq < floor and seq < last:
        raise cursor_expired()

    entries = [Entry(*item) for item in orjson.loads(row["page"])]
    has_more = len(entries) > limit
    entries = entries[:limit]
    next_seq = entries[-1].seq if entries else seq
    next_cursor = codec.encode(user_id, _BINDING, [current_epoch, next_seq])
    return FeedPage(
        await _with_objects(session, user_id, entries), next_cursor, has_more, current_epoch
    )


async def _with_objects(
    session: Session, user_id: str, entries: list[Entry]
) -> list[tuple[Entry, Row | None]]:
    """Collapse to each object's latest entry and attach the objects' current state."""
    latest: dict[tuple[str, int], Entry] = {}
    for entry in entries:
        latest.pop((entry.kind, entry.object_id), None)
        latest[(entry.kind, entry.object_id)] = entry  # re-inserted: ordered by last seq
    wanted: dict[str, list[int]] = {"task": [], "list": [], "tag": []}
    for entry in latest.values():
        if entry.op == "upsert":
            wanted[entry.kind].append(entry.object_id)
    objects: dict[tuple[str, int], Row] = {}
    queries: dict[str, Any] = {
        "task": lambda ids: readable(user_id).where(t.c.id.in_(ids)),
        "list": lambda ids: select(*LIST_COLUMNS).where(
            lst.c.user_id == user_id, lst.c.id.in_(ids)
        ),
        "tag": lambda ids: with_count().where(tg.c.user_id == user_id, tg.c.id.in_(ids)),
    }
    for kind, ids in wanted.items():
        if ids:
            for found in (await session.execute(queries[kind](ids))).mappings():
                objects[(kind, found["id"])] = found
    result: list[tuple[Entry, Row | None]] = []
    for key, entry in latest.items():
        if entry.op == "delete":
            result.append((entry, None))
        elif key in objects:
            result.append((entry, objects[key]))
        # An upsert whose object is gone: a later entry (on a later page) deletes it.
    return result
