"""`todo-api serve | migrate | token | openapi`."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import jwt
import orjson
import typer

from todo_api.auth.jwks import is_loopback_host
from todo_api.config import Settings
from todo_api.db import embedded
from todo_api.db.urls import redact
from todo_api.migrations import run_migrations

app = typer.Typer(help="Todo API: a multi-user task REST backend.", no_args_is_help=True)

DEV_SECRET_FILE = "dev-secret"  # noqa: S105 - a file name, not a secret


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def dev_secret(data_dir: Path) -> str:
    """The local development secret: created once, atomically, then reused."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / DEV_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _database_url(settings: Settings, *, migration: bool) -> tuple[str, Any]:
    chosen = settings.database_migration_url if migration else None
    chosen = chosen or settings.database_url
    if chosen is not None:
        return chosen.get_secret_value(), None
    return embedded.start(settings.data_dir)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Run the API server (migrating the embedded database first when it is used)."""
    from todo_api.observability.logs import configure_logging

    settings = Settings()
    if not settings.auth_configured and not is_loopback_host(host):
        raise _fail(
            "No authentication is configured (JWT_SECRET, BETTER_AUTH_SECRET, "
            "BETTER_AUTH_URL or JWT_JWKS_URL); refusing to listen beyond this machine."
        )
    configure_logging()
    if not settings.auth_configured:
        # Set before any worker starts, so they all verify with the same key.
        os.environ["JWT_SECRET"] = dev_secret(settings.data_dir)
        typer.echo(
            "Development mode: tokens are signed with a local secret in "
            f"{settings.data_dir / DEV_SECRET_FILE}.\n"
            "  TOKEN=$(todo-api token --user alice)\n"
            f'  curl -H "Authorization: Bearer $TOKEN" http://{host}:{port}/api/me/tasks\n'
            f"  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
            f'-d \'{{"title": "Buy milk"}}\' http://{host}:{port}/api/me/tasks'
        )
    server = None
    if settings.database_url is None:
        url, server = embedded.start(settings.data_dir)
        asyncio.run(run_migrations(url))
        os.environ["DATABASE_URL"] = url
        typer.echo(f"Embedded PostgreSQL with data in {settings.data_dir.resolve()}")
    # Uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully; turning that
    # into SystemExit lets the embedded database stop cleanly below.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_quietly)
    try:
        _run_uvicorn(settings, host, port, workers, reload)
    finally:
        if server is not None:
            server.cleanup()


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int, reload: bool) -> None:
    import uvicorn

    from todo_api.observability.logs import logging_config

    uvicorn.run(
        "todo_api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        loop="uvloop" if sys.platform != "win32" else "auto",
        # uvicorn's httptools protocol with a header timeout and size cap.
        http="todo_api.http.server:HeaderLimitedProtocol",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=20,
        log_config=logging_config(),
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to REVISION instead.")] = False,
) -> None:
    """Apply migrations with DATABASE_MIGRATION_URL (or DATABASE_URL, or the embedded one)."""
    settings = Settings()
    url, server = _database_url(settings, migration=True)
    asyncio.run(run_migrations(url, revision, downgrade=downgrade))
    typer.echo(f"Database at {redact(url)} is at revision {revision}.")
    del server


@app.command()
def token(
    user: Annotated[str, typer.Option(help="The `sub` of the token.")],
    email: Annotated[str | None, typer.Option(help="`email` claim.")] = None,
    name: Annotated[str | None, typer.Option(help="`name` claim.")] = None,
    ttl: Annotated[int, typer.Option(min=1, help="Lifetime in seconds.")] = 3600,
) -> None:
    """Sign a development HS256 token with the configured (or local development) secret."""
    settings = Settings()
    if settings.is_production:
        raise _fail("`todo-api token` is a development helper and refuses to run in production.")
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value()
    elif settings.better_auth_secret is not None and not (
        settings.better_auth_url or settings.jwt_jwks_url
    ):
        secret = settings.better_auth_secret.get_secret_value()
    else:
        secret = dev_secret(settings.data_dir)
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + ttl}
    if email:
        claims["email"] = email
    if name:
        claims["name"] = name
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    typer.echo(jwt.encode(claims, secret, algorithm="HS256"))


@app.command()
def openapi(
    output: Annotated[
        Path | None, typer.Option(help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the OpenAPI schema."""
    from todo_api.main import create_app

    schema = create_app(Settings(docs_enabled=True)).openapi()
    text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


if __name__ == "__main__":
    app()
