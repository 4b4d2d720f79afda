"""The connection pool, and each request's transaction with its user context.

Requests run on asyncpg's pool and transactions (public API only); statements are
SQLAlchemy Core compiled for asyncpg (`statements.py`). Alembic keeps its own
SQLAlchemy engine (`migrations/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zoneinfo
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import asyncpg
import orjson
from sqlalchemy.sql.elements import ClauseElement

from todo_api.config import Settings
from todo_api.db.breaker import CircuitBreaker
from todo_api.db.statements import Result, Statement
from todo_api.db.urls import ConnectionPlan, plan_connection
from todo_api.errors import DatabaseUnavailable

log = logging.getLogger("todo_api.db")

#: The role every request runs as: not the owner of the tables, no BYPASSRLS.
APP_ROLE = "todo_api_app"

#: Errors that mean "the connection to the database is gone", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def _context_sql(role: bool, custom_plans: bool) -> str:
    settings = ["set_config('app.user_id', $1, true)", "set_config('statement_timeout', $2, true)"]
    if role:
        settings.append("set_config('role', $3, true)")
    if custom_plans:
        settings.append("set_config('plan_cache_mode', 'force_custom_plan', true)")
    return "SELECT " + ", ".join(settings)


#: The user-context statement by (role switch, custom plans). The role switch is for a
#: URL whose role owns the tables (see `Database.inspect_isolation`).
_CONTEXTS = {
    (role, custom): _context_sql(role, custom) for role in (False, True) for custom in (False, True)
}


class Session:
    """The request's transaction: Core statements on one pooled asyncpg connection.

    Services receive it, run statements, and never commit: the transaction belongs to
    the request (`Database.transaction`)."""

    __slots__ = ("connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def execute(
        self, statement: Statement | ClauseElement, params: Mapping[str, Any] | None = None
    ) -> Result:
        """Run `statement`: a `Statement`, or any Core statement, compiled now (with
        `params` for its `bindparam`s, or with the values written into it)."""
        if not isinstance(statement, Statement):
            statement = Statement(statement, render_values=not params)
        rows = await self.connection.fetch(statement.sql, *statement.arguments(params))
        return Result(rows)


def is_disconnect(error: BaseException) -> bool:
    """Whether `error` (or what caused it) means the connection is gone."""
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, CONNECTION_ERRORS):
            return True
        current = current.__cause__
    return False


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing, unless a
    transaction was left open. Every per-request setting is transaction-local
    (`set_config(..., true)`), so asyncpg's full reset would only add a round trip."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def _init(connection: asyncpg.Connection) -> None:
    # `jsonb` values arrive as text encoded by SQLAlchemy's bind processor.
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=str, decoder=orjson.loads, format="text"
    )


#: Zone names that are no place: the host's own zone (which differs between the API's
#: host and the database's) and tzdata's placeholders.
HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class Database:
    """The pool, and how each request's transaction takes on a user's identity."""

    def __init__(self, plan: ConnectionPlan, settings: Settings) -> None:
        self.plan = plan
        self.statement_timeout = str(settings.database_statement_timeout_ms)
        self.size = settings.database_pool_size + settings.database_max_overflow
        self.acquire_timeout = settings.database_pool_timeout
        self.idle_lifetime = float(settings.database_pool_recycle)
        self.pool: asyncpg.Pool | None = None
        #: Set when first inspected: whether each transaction must drop to APP_ROLE
        #: (the URL's own role owns the tables or bypasses row-level security).
        self.switch_role = False
        self.isolation_enforced = False
        #: The time zone names both Python (`zoneinfo`) and this PostgreSQL server know:
        #: the only ones a profile may name. Read with the inspection.
        self.time_zones: frozenset[str] = frozenset()
        self.inspected = False
        self._inspect_lock = asyncio.Lock()
        self.breaker = CircuitBreaker(self.ping)
        #: Requests between asking the pool for a connection and their first statement.
        self.waiting = 0

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> Database:
        plan = plan_connection(
            url,
            pgbouncer=settings.database_pgbouncer,
            connect_timeout=settings.database_connect_timeout,
        )
        return cls(plan, settings)

    async def open(self) -> None:
        """Create the pool (connections are opened on demand)."""
        args = dict(self.plan.driver_args)
        args.setdefault("statement_cache_size", 1024)
        self.pool = await asyncpg.create_pool(
            self.plan.dsn,
            min_size=0,
            max_size=self.size,
            # Neon suspends idle computes after five minutes; close idle ones before.
            max_inactive_connection_lifetime=self.idle_lifetime,
            init=_init,
            reset=_reset,
            **args,
        )

    @property
    def in_use(self) -> int:
        """Connections checked out by requests."""
        if self.pool is None:
            return 0
        return int(self.pool.get_size() - self.pool.get_idle_size())

    async def ping(self) -> None:
        """One round trip on a pooled connection (no user context needed)."""
        assert self.pool is not None, "Database.open() first"
        async with self.pool.acquire(timeout=self.acquire_timeout) as connection:
            await connection.fetchval("SELECT 1")

    def transaction(self, user_id: str, *, custom_plans: bool = False) -> UserTransaction:
        """`async with database.transaction(user_id) as session: ...`: one transaction as
        `user_id`, committed when the block ends normally, otherwise rolled back.

        `custom_plans`: every statement is planned for its parameter values
        (`plan_cache_mode = force_custom_plan`). For text searches: asyncpg's prepared
        statements let PostgreSQL switch to a generic plan after five runs, and the
        generic plan of a search reads and sorts all of the caller's tasks.

        Outages (a lost connection, a statement timeout, a full pool) surface as
        `DatabaseUnavailable` (503), never as a 500.
        """
        return UserTransaction(self, user_id, custom_plans)

    def context_arguments(self, user_id: str, custom_plans: bool) -> tuple[str, list[str]]:
        """The user-context statement and its arguments."""
        args = [user_id, self.statement_timeout]
        if self.switch_role:
            args.append(APP_ROLE)
        return _CONTEXTS[self.switch_role, custom_plans], args

    async def ensure_inspected(self) -> None:
        """Learn how to enforce isolation before the first request runs SQL."""
        async with self._inspect_lock:
            if self.inspected:
                return
            try:
                await self.inspect_isolation()
            except CONNECTION_ERRORS as error:
                raise DatabaseUnavailable() from error

    async def inspect_isolation(self) -> None:
        """Decide whether transactions must switch role, then check RLS really applies;
        learn the server's time zones."""
        assert self.pool is not None, "Database.open() first"
        async with self.pool.acquire(timeout=self.acquire_timeout) as connection:
            owner_or_bypass = await connection.fetchval(
                "SELECT r.rolsuper OR r.rolbypassrls"
                " OR EXISTS (SELECT 1 FROM pg_tables t"
                "            WHERE t.schemaname = current_schema()"
                "              AND t.tablename = 'tasks' AND t.tableowner = current_user)"
                " FROM pg_roles r WHERE r.rolname = current_user"
            )
            self.switch_role = bool(owner_or_bypass)
            async with connection.transaction():
                sql, args = self.context_arguments("", False)
                await connection.execute(sql, *args)
                enforced = await connection.fetchval(
                    "SELECT NOT r.rolsuper AND NOT r.rolbypassrls"
                    " AND row_security_active('tasks')"
                    " AND row_security_active('profiles')"
                    " FROM pg_roles r WHERE r.rolname = current_user"
                )
            self.isolation_enforced = bool(enforced)
            server_zones = await connection.fetch("SELECT name FROM pg_timezone_names")
        # Python's list holds names some PostgreSQL builds refuse (`localtime`), and
        # each side's `localtime` is its own host's zone. Listing them reads the disk.
        python_zones = await asyncio.to_thread(zoneinfo.available_timezones)
        known = {row["name"] for row in server_zones} & python_zones
        self.time_zones = frozenset(known - HOST_DEPENDENT_ZONES)
        self.inspected = True

    def unavailable(self, error: BaseException) -> DatabaseUnavailable | None:
        """The 503 a failed statement means for the client: for a timeout, or for a lost
        connection (tripping the breaker); None for any other error."""
        if isinstance(error, asyncpg.QueryCanceledError):
            return DatabaseUnavailable(
                "The database took too long; retry shortly.", code="database_timeout"
            )
        if is_disconnect(error):
            # The outcome of a write cut off mid-flight is unknown: it is reported,
            # never retried blindly.
            self.breaker.trip()
            return DatabaseUnavailable()
        return None

    async def dispose(self) -> None:
        await self.breaker.close()
        if self.pool is not None:
            await self.pool.close()


class UserTransaction:
    """The context manager of `Database.transaction` (a class: it runs on every request,
    and `contextlib`'s generator machinery would cost more than it does)."""

    __slots__ = ("connection", "custom_plans", "database", "transaction", "user_id")

    def __init__(self, database: Database, user_id: str, custom_plans: bool) -> None:
        self.database = database
        self.user_id = user_id
        self.custom_plans = custom_plans

    async def __aenter__(self) -> Session:
        database = self.database
        if database.breaker.is_open:
            raise DatabaseUnavailable()
        if not database.inspected:
            await database.ensure_inspected()
        pool = database.pool
        assert pool is not None, "Database.open() first"
        sql, args = database.context_arguments(self.user_id, self.custom_plans)
        # A pooled connection the server closed while idle fails on its first statement:
        # nothing has run yet, so one retry on another connection is safe for any request.
        for attempt in (1, 2):
            database.waiting += 1
            try:
                try:
                    connection = await pool.acquire(timeout=database.acquire_timeout)
                except TimeoutError as error:
                    if pool.get_size() >= database.size:
                        # Every connection is busy: the database is fine, we are saturated.
                        raise DatabaseUnavailable(
                            "The service is at capacity; retry shortly.", code="database_busy"
                        ) from error
                    database.breaker.trip()  # the connect itself timed out
                    raise DatabaseUnavailable() from error
                except CONNECTION_ERRORS as error:
                    database.breaker.trip()
                    raise DatabaseUnavailable() from error
                transaction = connection.transaction()
                try:
                    await transaction.start()
                    await connection.execute(sql, *args)
                except BaseException as error:
                    await pool.release(connection)
                    if not is_disconnect(error):
                        raise
                    if attempt == 1:
                        continue
                    database.breaker.trip()
                    raise DatabaseUnavailable() from error
            finally:
                database.waiting -= 1
            self.connection = connection
            self.transaction = transaction
            return Session(connection)
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        database = self.database
        try:
            if error is None:
                try:
                    await self.transaction.commit()
                except Exception as failure:
                    unavailable = database.unavailable(failure)
                    if unavailable is not None:
                        raise unavailable from failure
                    raise
                return
            # A connection the rollback cannot use is cleaned up by the pool on release;
            # one that was lost is already back in the pool (asyncpg takes a closed
            # connection back at once, and then refuses every call on it, even
            # `is_closed()`).
            with contextlib.suppress(Exception):
                if not self.connection.is_closed():
                    await self.transaction.rollback()
            unavailable = database.unavailable(error)
            if unavailable is not None:
                raise unavailable from error
        finally:
            assert database.pool is not None
            await database.pool.release(self.connection)
