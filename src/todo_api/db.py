"""Engines from connection URLs, and the per-request transaction with its user context."""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
from sqlalchemy import TextClause, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from todo_api.breaker import CircuitBreaker
from todo_api.config import Settings

log = logging.getLogger("todo_api.db")

#: The role every request runs as: not the owner of the tables, no BYPASSRLS.
APP_ROLE = "todo_api_app"

_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", ""}
# libpq spellings asyncpg does not understand; they are translated below, never passed on.
_LIBPQ_ONLY = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "channel_binding",
    "connect_timeout",
    "options",
    "application_name",
    "pgbouncer",
}


#: Errors that mean "the connection to the database is gone", as opposed to a bad query.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # includes ConnectionDoesNotExistError
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)
#: What a failing connect or first statement can raise.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    sa_exc.StatementError,  # DBAPIError, or a reconnect that failed (`orig` is the OSError)
)

_QUERY_CANCELED = "57014"  # statement_timeout fired


class DatabaseUnavailable(Exception):
    """The database cannot serve this request now; the client should retry later (503)."""

    def __init__(
        self,
        code: str = "database_unavailable",
        detail: str = "The database is not answering; retry shortly.",
    ) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps (SQLAlchemy keeps the driver's error in `orig`)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return seen


def _is_disconnect(error: BaseException) -> bool:
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return any(isinstance(cause, _CONNECTION_ERRORS) for cause in _causes(error))


def _is_timeout(error: BaseException) -> bool:
    orig = getattr(error, "orig", None)
    return getattr(orig, "sqlstate", None) == _QUERY_CANCELED or (
        getattr(getattr(orig, "__cause__", None), "sqlstate", None) == _QUERY_CANCELED
    )


@dataclass(frozen=True)
class ConnectionPlan:
    """What a URL pasted from Neon, Heroku or libpq means for asyncpg."""

    url: str
    connect_args: dict[str, Any]
    pgbouncer: bool
    host: str


def plan_connection(
    raw_url: str, *, pgbouncer: bool | None = None, connect_timeout: float = 15.0
) -> ConnectionPlan:
    """Rewrite a libpq-style URL for SQLAlchemy + asyncpg.

    TLS is verified against the system trust store whenever the URL asks for TLS
    (`sslmode=require` included: Neon's certificates are publicly trusted, and an
    unverified TLS connection only protects against passive eavesdroppers). A
    `-pooler` host (PgBouncer in transaction mode) gets statement caches off.
    """
    parts = urlsplit(raw_url.strip())
    scheme = parts.scheme.lower()
    if scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise ValueError("DATABASE_URL must start with postgres:// or postgresql://")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = (parts.hostname or query.get("host", "")).lower()
    sslmode = query.get("sslmode", "").lower()
    unix_socket = host.startswith("/") or (not parts.hostname and "host" in query)

    connect_args: dict[str, Any] = {
        "timeout": float(query.get("connect_timeout") or connect_timeout)
    }
    if sslmode in {"require", "verify-ca", "verify-full"} or (
        not sslmode and host.endswith(".neon.tech")
    ):
        context = ssl.create_default_context(cafile=query.get("sslrootcert") or None)
        connect_args["ssl"] = context
    elif sslmode in {"allow", "prefer"} and not unix_socket:
        connect_args["ssl"] = "prefer"
    elif sslmode == "disable" or unix_socket or host in _LOOPBACK_HOSTS:
        connect_args["ssl"] = False
    elif not sslmode:
        connect_args["ssl"] = "prefer"
    else:
        raise ValueError(f"unsupported sslmode {sslmode!r}")

    is_pooler = pgbouncer if pgbouncer is not None else "-pooler" in host
    if is_pooler:
        # PgBouncer in transaction mode: a prepared statement may land on another
        # server connection, so nothing may be cached by name per connection.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    else:
        application_name = query.get("application_name")
        if application_name:
            connect_args["server_settings"] = {"application_name": unquote(application_name)}

    kept = {k: v for k, v in query.items() if k not in _LIBPQ_ONLY}
    url = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(kept), ""))
    return ConnectionPlan(url=url, connect_args=connect_args, pgbouncer=is_pooler, host=host)


def _unique_statement_name() -> str:
    return f"__todo_api_{uuid.uuid4().hex}__"


def redact(url: str) -> str:
    """A URL safe to print: the password replaced."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def create_engine(url: str, settings: Settings) -> tuple[AsyncEngine, ConnectionPlan]:
    """An engine for the request path: a bounded pool, no pre-ping, short checkout wait."""
    plan = plan_connection(
        url,
        pgbouncer=settings.database_pgbouncer,
        connect_timeout=settings.database_connect_timeout,
    )
    engine = create_async_engine(
        plan.url,
        connect_args=plan.connect_args,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        # Neon suspends idle computes after five minutes; recycle before that.
        pool_recycle=settings.database_pool_recycle,
        pool_pre_ping=False,
        # Statement parameters are user data (task text): never in logs or error messages.
        hide_parameters=True,
    )
    return engine, plan


#: The dialect the engine uses, for compiling hot statements once (see `RawStatement`).
_ASYNCPG_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class RawStatement:
    """A Core statement compiled once to asyncpg's SQL text and parameter order.

    `fetch_raw` runs it on the driver connection under the request's transaction (the
    one `Database.user_session` opened with the user context), skipping SQLAlchemy's
    execution context and result wrapping: for the hottest statements those cost more
    CPU than the query. Only for statements whose columns need no result processing.
    Parameters given a value when the statement was built (a `literal(1)`) keep it.
    """

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]

    @classmethod
    def compile(cls, stmt: Any) -> RawStatement:
        compiled = stmt.compile(dialect=_ASYNCPG_DIALECT)
        names = tuple(compiled.positiontup or ())
        fixed = {
            name: bind.value
            for name, bind in ((n, compiled.binds.get(n)) for n in names)
            if bind is not None and bind.value is not None and not bind.required
        }
        return cls(compiled.string, names, fixed)

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        """The positional arguments: `params` by name, else the built-in values."""
        return [params[name] if name in params else self.fixed[name] for name in self.names]


async def fetch_raw(
    session: Reader, stmt: RawStatement, params: dict[str, Any]
) -> list[asyncpg.Record]:
    """The rows of `stmt` inside `session`'s open transaction, as asyncpg Records.

    `session` is the request's `AsyncConnection` (its transaction opened by
    `Database.user_session`) or a `DriverSession` (`Database.driver_session`). A driver
    error is raised as SQLAlchemy would have raised it (`DBAPIError` wrapping the
    translated error, the connection invalidated on a disconnect), so the session's and
    the app's error mapping apply unchanged.
    """
    if isinstance(session, DriverSession):
        return await session.fetch(stmt, params)
    sync = session.sync_connection
    assert sync is not None, "fetch_raw needs a started connection"
    pooled = sync.connection
    driver: Any = pooled.driver_connection
    args = stmt.arguments(params)
    try:
        rows: list[asyncpg.Record] = await driver.fetch(stmt.sql, *args)
    except Exception as error:
        wrapped, lost = _translate_driver_error(
            session.dialect, pooled.dbapi_connection, stmt.sql, error
        )
        if lost is not None:
            await session.invalidate(lost)
        raise wrapped from None
    return rows


class DriverSession:
    """A request transaction held directly on the pooled asyncpg connection.

    For the hot path's requests (`hotpath.py`): it skips SQLAlchemy's `Connection`, its
    transaction objects and the execution of the context statement, which together cost
    a get-one a quarter of its CPU, and runs `RawStatement`s on the driver. A service
    that needs a Core statement after all calls `execute` as on an `AsyncConnection`: a
    SQLAlchemy connection is then wrapped around this same pooled connection, inside
    the same transaction (its begin is a no-op for this dialect; the commit stays ours).
    The transaction is tracked by SQLAlchemy's driver adapter, so returning the
    connection to the pool rolls back whatever was left open, as for `user_session`.
    Driver errors are raised as `DBAPIError`s, exactly as `fetch_raw` raises them.
    """

    __slots__ = ("_core", "adapted", "dialect", "driver", "engine", "invalidated", "pooled")

    def __init__(self, pooled: Any, engine: AsyncEngine) -> None:
        self.pooled = pooled
        self.adapted = pooled.dbapi_connection
        self.driver = pooled.driver_connection
        self.engine = engine
        self.dialect = engine.dialect
        self.invalidated = False
        self._core: AsyncConnection | None = None

    async def begin(self, context: RawStatement, params: dict[str, Any]) -> None:
        try:
            await self.adapted._start_transaction()
        except Exception as error:
            raise await self._wrap(context.sql, error) from None
        await self.fetch(context, params)

    async def fetch(self, stmt: RawStatement, params: dict[str, Any]) -> list[asyncpg.Record]:
        try:
            rows: list[asyncpg.Record] = await self.driver.fetch(stmt.sql, *stmt.arguments(params))
        except Exception as error:
            raise await self._wrap(stmt.sql, error) from None
        return rows

    async def commit(self) -> None:
        transaction = self.adapted._transaction
        if transaction is None:
            return
        try:
            await self.adapted._call_and_discard(transaction.commit)
        except Exception as error:
            raise await self._wrap("COMMIT", error) from None

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        """`AsyncConnection.execute`, in this session's transaction."""
        if self._core is None:
            core = Connection(self.engine.sync_engine, connection=self.pooled)
            self._core = AsyncConnection(self.engine, core)
        return await self._core.execute(statement, parameters)

    @property
    def reusable(self) -> bool:
        """Whether the connection is healthy and outside any transaction."""
        return not self.invalidated and self.pooled.is_valid and self.adapted._transaction is None

    async def release(self) -> None:
        """Back to the pool (rolled back there if still open), or closed if invalidated."""
        await greenlet_spawn(self.pooled.close)

    async def _wrap(self, sql: str, error: Exception) -> BaseException:
        wrapped, lost = _translate_driver_error(self.dialect, self.adapted, sql, error)
        if lost is not None and not self.invalidated:
            self.invalidated = True
            # As SQLAlchemy's `Connection` does on a disconnect: this connection, and the
            # pool's older ones (kept ones included), are not to be used again.
            pool: Any = self.engine.sync_engine.pool
            await greenlet_spawn(pool._invalidate, self.pooled, lost)
        return wrapped


class KeptConnections:
    """The hot path's connections between requests, kept checked out of the pool.

    A checkout and a return through SQLAlchemy's async pool cost a get-one about 6% of
    its CPU (each runs in a greenlet of its own; bench/README.md). Here a finished request of the hot
    path (`Database.driver_session`) hands its connection, healthy and outside any
    transaction, straight to the next one: to one waiting for a connection, else to the
    idle list (up to DATABASE_POOL_SIZE), from which the next takes it with a list pop.
    The pool still owns and counts every connection, so its limits hold; requests
    checking out of the pool itself (FastAPI's routes, the hot path when nothing is
    kept) come first: while one is in a checkout, a finished request gives its
    connection back to the pool, and a checkout that finds the pool full first returns
    an idle kept one. A kept connection that the pool would recycle at
    checkout (past DATABASE_POOL_RECYCLE, or older than an invalidation of the pool) is
    given back instead, and the pool recycles it.
    """

    __slots__ = ("_closed", "engine", "idle", "in_pool_checkout", "limit", "timeout", "waiters")

    def __init__(self, engine: AsyncEngine, *, limit: int, timeout: float) -> None:
        self.engine = engine
        self.limit = limit
        self.timeout = timeout
        self.idle: list[Any] = []
        #: Requests waiting for a kept connection: each gets one, or None to try the pool.
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        #: Requests inside a pool checkout (possibly waiting for a connection).
        self.in_pool_checkout = 0
        self._closed = False
        event.listen(engine.sync_engine.pool, "checkin", self._on_checkin)

    def _pool_full(self) -> bool:
        pool: Any = self.engine.sync_engine.pool
        overflow: int = pool._max_overflow
        in_use: int = pool.checkedout()
        return overflow >= 0 and in_use >= pool.size() + overflow

    def _fresh(self, pooled: Any) -> bool:
        record = pooled._connection_record
        if record is None or not pooled.is_valid:
            return False
        pool: Any = self.engine.sync_engine.pool
        started: float = record.starttime
        if pool._recycle > -1 and time.time() - started > pool._recycle:
            return False
        return bool(pool._invalidate_time <= started and record._soft_invalidate_time <= started)

    async def acquire(self) -> Any:
        """A connection: a kept one, one handed over by a finishing request, or the pool's.
        Raises `sqlalchemy.exc.TimeoutError` after DATABASE_POOL_TIMEOUT."""
        while self.idle:
            pooled = self.idle.pop()
            if self._fresh(pooled):
                return pooled
            await greenlet_spawn(pooled.close)
        if self.waiters or self._pool_full():
            pooled = await self._wait()
            if pooled is not None:
                return pooled
        async with self.pool_checkout():
            return await self.engine.raw_connection()

    async def _wait(self) -> Any:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self.waiters.append(waiter)
        timer = loop.call_later(self.timeout, _expire, waiter)
        try:
            pooled = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is not None:  # handed over as this request was cancelled
                    await self._hand_on(handed)
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                self.waiters.remove(waiter)
        if pooled is not None and not self._fresh(pooled):
            await greenlet_spawn(pooled.close)
            return None
        return pooled

    async def release(self, session: DriverSession) -> None:
        """After a request: its connection to the next one, or back to the pool."""
        if not session.reusable:
            await session.release()
            return
        await self._hand_on(session.pooled)

    async def _hand_on(self, pooled: Any) -> None:
        if not self._closed and not self.in_pool_checkout:
            while self.waiters:
                waiter = self.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(pooled)
                    return
            if len(self.idle) < self.limit:
                self.idle.append(pooled)
                return
        await greenlet_spawn(pooled.close)

    @asynccontextmanager
    async def pool_checkout(self) -> AsyncIterator[None]:
        """Around a checkout from the pool: kept connections go back to it meanwhile."""
        if self.idle and self._pool_full():
            # An idle kept connection is what this request may be waiting for.
            await greenlet_spawn(self.idle.pop().close)
        self.in_pool_checkout += 1
        try:
            yield
        finally:
            self.in_pool_checkout -= 1

    def _on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        # A connection went back to the pool: the first waiting request may try there.
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        while self.idle:
            await greenlet_spawn(self.idle.pop().close)
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        event.remove(self.engine.sync_engine.pool, "checkin", self._on_checkin)


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(sa_exc.TimeoutError("no connection within the pool timeout"))


#: What `fetch_raw` runs on.
Reader = AsyncConnection | DriverSession


def _translate_driver_error(
    dialect: Any, adapted: Any, sql: str, error: Exception
) -> tuple[BaseException, BaseException | None]:
    """`error` from the asyncpg connection as SQLAlchemy would raise it: a `DBAPIError`
    wrapping the DB-API translation (statement parameters hidden). Also returns the
    translation when it means the connection is gone, for the caller to invalidate it."""
    dbapi_error = dialect.loaded_dbapi.Error
    try:
        adapted._handle_exception(error)  # raises the DB-API translation of `error`
    except dbapi_error as translated:
        invalidated = dialect.is_disconnect(translated, adapted, None)
        wrapped = sa_exc.DBAPIError.instance(
            sql,
            None,
            translated,
            dbapi_error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=dialect,
        )
        return wrapped, translated if invalidated else None
    except Exception as other:
        return other, None
    return error, None


def _context(role: bool, custom_plans: bool) -> TextClause:
    settings = ["set_config('app.user_id', :user_id, true)"]
    if role:
        settings.append("set_config('role', :role, true)")
    settings.append("set_config('statement_timeout', :timeout, true)")
    if custom_plans:
        settings.append("set_config('plan_cache_mode', 'force_custom_plan', true)")
    return text("SELECT " + ", ".join(settings))


#: The user-context statement by (role switch, custom plans), built once: a `text()` per
#: request costs its construction and cache key. The role switch is for a URL whose role
#: owns the tables (see `Database`); custom plans, see `Database.user_session`.
_CONTEXTS = {
    (role, custom): _context(role, custom) for role in (False, True) for custom in (False, True)
}
#: The same for the driver session, by role switch (never with custom plans).
_RAW_CONTEXTS = {role: RawStatement.compile(_CONTEXTS[role, False]) for role in (False, True)}


class Database:
    """The engine, and how each request's transaction takes on a user's identity.

    Requests use SQLAlchemy Core on a plain `AsyncConnection`: the services issue Core
    statements and need nothing from the ORM's unit of work, whose bookkeeping would
    cost more per request than the queries themselves.
    """

    def __init__(self, engine: AsyncEngine, plan: ConnectionPlan, settings: Settings) -> None:
        self.engine = engine
        self.plan = plan
        self.statement_timeout = str(settings.database_statement_timeout_ms)
        #: Set at start-up: whether each transaction must drop to APP_ROLE
        #: (the URL's own role owns the tables or bypasses row-level security).
        self.switch_role = False
        self.isolation_enforced = False
        self.inspected = False
        self._inspect_lock = asyncio.Lock()
        self.breaker = CircuitBreaker(self.ping)
        #: Requests between asking the pool for a connection and their first statement.
        self.waiting = 0
        #: The hot path's connections between requests.
        self.kept = KeptConnections(
            engine, limit=settings.database_pool_size, timeout=settings.database_pool_timeout
        )

    async def ping(self) -> None:
        """One round trip on a pooled connection (no user context needed)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def begin_user_transaction(
        self, session: AsyncConnection, user_id: str, *, custom_plans: bool = False
    ) -> None:
        """Open the transaction as `user_id`: one statement sets every per-request setting."""
        params: dict[str, str] = {"user_id": user_id, "timeout": self.statement_timeout}
        if self.switch_role:
            params["role"] = APP_ROLE
        await session.execute(_CONTEXTS[self.switch_role, custom_plans], params)

    @asynccontextmanager
    async def user_session(
        self, user_id: str, *, custom_plans: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection whose transaction is committed when the caller's block ends normally.

        Database outages surface as `DatabaseUnavailable` (503), never as a 500.

        `custom_plans`: every statement of the transaction is planned for its parameter
        values (`plan_cache_mode = force_custom_plan`, set by the same context statement).
        For text searches: on a direct connection, asyncpg's prepared statements let
        PostgreSQL switch to a generic plan after five runs, and the generic plan of a
        search reads and sorts all of the caller's tasks, which for a user with 50,000
        of them is ~190 ms instead of ~11 ms (`bench/scale.py`). Through a pooler every
        statement is planned afresh anyway.
        """
        if self.breaker.is_open:
            raise DatabaseUnavailable()
        if not self.inspected:
            await self.ensure_inspected()
        session = self.engine.connect()
        try:
            await self._begin(session, user_id, custom_plans)
            yield session
            await session.commit()
        except sa_exc.StatementError as error:
            unavailable = self._unavailable(error)
            if unavailable is None:
                raise
            raise unavailable from error
        finally:
            # Returns the connection to the pool; an open transaction is rolled back.
            if session.sync_connection is not None:
                await session.close()

    def driver_session(self, user_id: str) -> DriverTransaction:
        """`user_session` on the driver connection, for the hot path (see `DriverSession`):
        `async with database.driver_session(user_id) as session: ...`.

        The same guarantees: one context statement, commit when the block ends normally
        (else rolled back), a dead pooled connection retried once before anything ran,
        outages as `DatabaseUnavailable`.
        """
        return DriverTransaction(self, user_id)

    @property
    def kept_idle(self) -> int:
        """Connections kept by the hot path between requests (idle, but checked out)."""
        return len(self.kept.idle)

    def _unavailable(self, error: sa_exc.StatementError) -> DatabaseUnavailable | None:
        """The 503 a failed statement means for the client: for a timeout, or for a lost
        connection (tripping the breaker); None for any other error."""
        if _is_timeout(error):
            return DatabaseUnavailable(
                "database_timeout", "The database took too long; retry shortly."
            )
        if _is_disconnect(error):
            # The outcome of a write cut off mid-flight is unknown: it is reported,
            # never retried blindly.
            self.breaker.trip()
            return DatabaseUnavailable()
        return None

    async def _driver_begin(self, user_id: str) -> DriverSession:
        params: dict[str, str] = {"user_id": user_id, "timeout": self.statement_timeout}
        if self.switch_role:
            params["role"] = APP_ROLE
        context = _RAW_CONTEXTS[self.switch_role]
        for attempt in (1, 2):
            self.waiting += 1
            try:
                try:
                    pooled = await self.kept.acquire()
                except sa_exc.TimeoutError as error:
                    raise DatabaseUnavailable(
                        "database_busy", "The service is at capacity; retry shortly."
                    ) from error
                except Exception as error:
                    if not _is_disconnect(error):
                        raise
                    self.breaker.trip()
                    raise DatabaseUnavailable() from error
                session = DriverSession(pooled, self.engine)
                try:
                    await session.begin(context, params)
                except BaseException as error:
                    await session.release()
                    if not isinstance(error, sa_exc.DBAPIError) or not _is_disconnect(error):
                        raise
                    if attempt == 1 and error.connection_invalidated:
                        continue
                    self.breaker.trip()
                    raise DatabaseUnavailable() from error
                return session
            finally:
                self.waiting -= 1
        raise AssertionError("unreachable")  # pragma: no cover

    async def _begin(
        self, session: AsyncConnection, user_id: str, custom_plans: bool = False
    ) -> None:
        """The first statement; retried once on a fresh connection if a pooled one was dead.

        Nothing has run yet at this point, so the retry is safe for reads and writes:
        it absorbs connections that a serverless database closed while idle.
        """
        for attempt in (1, 2):
            self.waiting += 1
            try:
                if session.sync_connection is None:
                    async with self.kept.pool_checkout():
                        await session.start()  # checks a connection out of the pool
                await self.begin_user_transaction(session, user_id, custom_plans=custom_plans)
                return
            except sa_exc.TimeoutError as error:
                # Every pooled connection is busy: the database is fine, we are saturated.
                raise DatabaseUnavailable(
                    "database_busy", "The service is at capacity; retry shortly."
                ) from error
            except UNREACHABLE as error:
                if not _is_disconnect(error):
                    raise
                if session.sync_connection is not None:
                    await session.rollback()
                invalidated = isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated
                if attempt == 1 and invalidated:
                    continue
                self.breaker.trip()
                raise DatabaseUnavailable() from error
            finally:
                self.waiting -= 1

    async def ensure_inspected(self) -> None:
        """Learn how to enforce isolation before the first request runs SQL."""
        async with self._inspect_lock:
            if self.inspected:
                return
            try:
                await self.inspect_isolation()
            except UNREACHABLE as error:
                if not _is_disconnect(error):
                    raise
                raise DatabaseUnavailable() from error

    async def inspect_isolation(self) -> None:
        """Decide whether transactions must switch role, then check RLS really applies."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT r.rolsuper OR r.rolbypassrls"
                        " OR EXISTS (SELECT 1 FROM pg_tables t"
                        "            WHERE t.schemaname = current_schema()"
                        "              AND t.tablename = 'tasks' AND t.tableowner = current_user)"
                        " FROM pg_roles r WHERE r.rolname = current_user"
                    )
                )
            ).scalar_one()
            self.switch_role = bool(row)
            await conn.rollback()
        async with self.engine.connect() as session:
            await self.begin_user_transaction(session, "")
            enforced = (
                await session.execute(
                    text(
                        "SELECT NOT r.rolsuper AND NOT r.rolbypassrls"
                        " AND row_security_active('tasks')"
                        " AND row_security_active('profiles')"
                        " FROM pg_roles r WHERE r.rolname = current_user"
                    )
                )
            ).scalar_one()
            self.isolation_enforced = bool(enforced)
            await session.rollback()
        self.inspected = True

    async def dispose(self) -> None:
        await self.kept.close()
        await self.breaker.close()
        await self.engine.dispose()


class DriverTransaction:
    """The context manager of `Database.driver_session` (a class: on the hot path,
    `contextlib`'s generator machinery costs more than this)."""

    __slots__ = ("database", "session", "user_id")

    def __init__(self, database: Database, user_id: str) -> None:
        self.database = database
        self.user_id = user_id

    async def __aenter__(self) -> DriverSession:
        database = self.database
        if database.breaker.is_open:
            raise DatabaseUnavailable()
        if not database.inspected:
            await database.ensure_inspected()
        self.session = await database._driver_begin(self.user_id)
        return self.session

    async def __aexit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        try:
            if error is None:
                await self.session.commit()
            elif isinstance(error, sa_exc.StatementError):
                self._raise_unavailable(error)
        except sa_exc.StatementError as failure:  # the commit's
            self._raise_unavailable(failure)
            raise
        finally:
            await self.database.kept.release(self.session)

    def _raise_unavailable(self, error: sa_exc.StatementError) -> None:
        unavailable = self.database._unavailable(error)
        if unavailable is not None:
            raise unavailable from error
