"""Connection URLs as Neon, Heroku and libpq print them, turned into driver settings."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import make_url

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
#: Connect arguments only SQLAlchemy's asyncpg dialect understands (Alembic's engine).
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")


@dataclass(frozen=True)
class ConnectionPlan:
    """What a URL pasted from Neon, Heroku or libpq means for asyncpg."""

    #: The URL for SQLAlchemy (`postgresql+asyncpg://`), which Alembic's engine uses.
    url: str
    #: SQLAlchemy's `connect_args` for that engine.
    connect_args: dict[str, Any]
    pgbouncer: bool
    host: str

    @property
    def dsn(self) -> str:
        """The URL for asyncpg itself."""
        return self.url.replace("postgresql+asyncpg://", "postgresql://", 1)

    @property
    def driver_args(self) -> dict[str, Any]:
        """Keyword arguments for `asyncpg.connect` / `asyncpg.create_pool`."""
        return {k: v for k, v in self.connect_args.items() if k not in _DIALECT_ONLY}


def plan_connection(
    raw_url: str, *, pgbouncer: bool | None = None, connect_timeout: float = 15.0
) -> ConnectionPlan:
    """Rewrite a libpq-style URL for asyncpg.

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
