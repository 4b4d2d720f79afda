"""Stored `Idempotency-Key`s: claim a key, store the response, read a stored one.

The claim is an INSERT into `idempotency_keys` in the request's own transaction, and the
response is stored by the same transaction just before it commits. So a stored response
exists exactly when the write it describes committed, and a concurrent duplicate — whose
INSERT meets the first one's uncommitted row in the primary key — waits for that
transaction to end: then it either finds the committed response (replay) or, if the
first one rolled back, claims the key itself. The wait is bounded by `lock_timeout`,
set (transaction-local) by the claim statement itself; a duplicate still waiting then
gets 409 `idempotency_in_progress`.

Expired keys are claimed over in place, and each claim deletes a few other expired keys
of the same user (and a bounded expired prefix of the change feed): no cron job.

Each user's stored responses are bounded in number and in bytes (`Bounds`): storing a
response forgets that user's oldest ones beyond either bound, in the same statement (a
retry with a forgotten key runs again, as after expiry). The newest response is always
kept. Bodies from `COMPRESS_FROM` bytes on (a batch's results, a large task) are stored
zlib-compressed when that makes them smaller, and counted at their stored size.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    Interval,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    bindparam,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from todo_api.db.database import Session
from todo_api.db.statements import Statement
from todo_api.errors import Conflict
from todo_api.models import idempotency_keys_table as ik
from todo_api.services import changes

#: How long a duplicate waits for the first request's transaction before answering 409.
WAIT_MS = 5000
#: Other expired keys deleted per claim.
PURGE_KEYS = 20
#: Bodies at least this long are stored compressed (when that saves space).
COMPRESS_FROM = 1024
_LOCK_NOT_AVAILABLE = "55P03"

_CLAIM = Statement(
    text(
        f"""
    WITH settings AS MATERIALIZED (
        SELECT set_config('lock_timeout', :wait, true) AS lock_timeout
    ),
    purged_keys AS (
        DELETE FROM idempotency_keys
        WHERE user_id = :user_id AND key IN (
            SELECT key FROM idempotency_keys
            WHERE user_id = :user_id AND expires_at < now() AND key <> :key
            LIMIT {PURGE_KEYS}
        )
    ),
    {changes.purge_statement()},
    claimed AS (
        INSERT INTO idempotency_keys (user_id, key, request_hash, expires_at)
        SELECT :user_id, :key, :hash, now() + :ttl FROM settings
        ON CONFLICT (user_id, key) DO UPDATE
            SET request_hash = excluded.request_hash, response_status = NULL,
                response_headers = NULL, response_body = NULL, created_at = now(),
                expires_at = excluded.expires_at
            WHERE idempotency_keys.expires_at < now()
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM claimed) AS claimed
    """  # noqa: S608 (only constants are interpolated)
    ).bindparams(
        bindparam("user_id", type_=Text),
        bindparam("key", type_=String),
        bindparam("hash", type_=String),
        bindparam("wait", type_=Text),
        bindparam("ttl", type_=Interval),
        bindparam("batch", type_=Integer),
        bindparam("cutoff", type_=DateTime(timezone=True)),
    )
)


_STORE = Statement(
    text(
        """
    WITH stored AS (
        UPDATE idempotency_keys
        SET response_status = :status, response_headers = :headers, response_body = :body,
            response_compressed = :compressed
        WHERE user_id = :user_id AND key = :key
        RETURNING 1
    ),
    others AS (
        SELECT key,
               row_number() OVER newest_first AS rank,
               sum(octet_length(response_body)) OVER newest_first AS bytes
        FROM idempotency_keys
        WHERE user_id = :user_id AND key <> :key
        WINDOW newest_first AS (ORDER BY created_at DESC, key DESC)
    ),
    evicted AS (
        SELECT key FROM idempotency_keys
        WHERE user_id = :user_id AND key IN (
            SELECT key FROM others WHERE rank >= :max_keys OR bytes + :size > :max_bytes
        )
        -- A row another transaction is renewing stays: the next store evicts it.
        FOR UPDATE SKIP LOCKED
    )
    DELETE FROM idempotency_keys
    WHERE user_id = :user_id AND key IN (SELECT key FROM evicted)
    """
    ).bindparams(
        bindparam("user_id", type_=Text),
        bindparam("key", type_=String),
        bindparam("status", type_=SmallInteger),
        bindparam("headers", type_=JSONB),
        bindparam("body", type_=LargeBinary),
        bindparam("compressed", type_=Boolean),
        bindparam("size", type_=BigInteger),
        bindparam("max_keys", type_=Integer),
        bindparam("max_bytes", type_=BigInteger),
    )
)


@dataclass(frozen=True)
class Bounds:
    """How many responses, and how many stored bytes, one user may have kept."""

    max_keys: int
    max_bytes: int


@dataclass(frozen=True)
class Stored:
    """A key already used: the request it was used for and, once done, the response."""

    request_hash: str
    status: int | None
    headers: dict[str, str]
    body: bytes


def in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        code="idempotency_in_progress",
        headers={"Retry-After": "1"},
    )


async def claim(
    session: Session,
    user_id: str,
    key: str,
    request_hash: str,
    ttl_hours: int,
    retention_days: int,
) -> Stored | None:
    """Claim `key` for this request (None), or return what is stored under it."""
    params: dict[str, Any] = {
        "user_id": user_id,
        "key": key,
        "hash": request_hash,
        "wait": str(WAIT_MS),
        "ttl": timedelta(hours=ttl_hours),
        "batch": changes.PURGE_BATCH,
        "cutoff": changes.cutoff(retention_days),
    }
    try:
        claimed = (await session.execute(_CLAIM, params)).scalar_one()
    except asyncpg.PostgresError as error:
        if error.sqlstate == _LOCK_NOT_AVAILABLE:
            raise in_progress() from error
        raise
    if claimed:
        return None
    # A new statement, so a new snapshot: it sees the row the first request committed.
    stmt = select(
        ik.c.request_hash,
        ik.c.response_status,
        ik.c.response_headers,
        ik.c.response_body,
        ik.c.response_compressed,
    ).where(ik.c.user_id == user_id, ik.c.key == key)
    row = (await session.execute(stmt)).first()
    if row is None:
        # Deleted between the two statements (expired and purged): nothing to replay.
        raise in_progress()
    body = bytes(row["response_body"] or b"")
    return Stored(
        row["request_hash"],
        row["response_status"],
        dict(row["response_headers"] or {}),
        zlib.decompress(body) if row["response_compressed"] else body,
    )


async def store(
    session: Session,
    user_id: str,
    key: str,
    status: int,
    headers: dict[str, str],
    body: bytes,
    bounds: Bounds,
) -> None:
    """Record the response of the request that claimed `key` (same transaction), and
    forget the user's oldest stored responses beyond `bounds`."""
    stored, compressed = body, False
    if len(body) >= COMPRESS_FROM:
        packed = zlib.compress(body)
        if len(packed) < len(body):
            stored, compressed = packed, True
    params: dict[str, Any] = {
        "user_id": user_id,
        "key": key,
        "status": status,
        "headers": headers,
        "body": stored,
        "compressed": compressed,
        "size": len(stored),
        "max_keys": bounds.max_keys,
        "max_bytes": bounds.max_bytes,
    }
    await session.execute(_STORE, params)
