"""The application factory: lifespan, middleware, routers and error handlers."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from starlette.routing import BaseRoute

from todo_api.auth.tokens import AuthConfig, TokenVerifier
from todo_api.config import Settings, get_settings
from todo_api.db import embedded
from todo_api.db.database import Database
from todo_api.db.urls import redact
from todo_api.deps import Shared, query_names
from todo_api.errors import DatabaseUnavailable
from todo_api.events.redis_fanout import ChangePublisher
from todo_api.events.setup import events_hub, publishes_to_redis
from todo_api.events.tickets import TicketCodec
from todo_api.http.cors import ProblemCORSMiddleware
from todo_api.http.hosts import AllowedHostsMiddleware
from todo_api.http.middleware import (
    AuthenticationMiddleware,
    BodyLimitMiddleware,
    ErrorSafetyNetMiddleware,
    PathUserMiddleware,
    RequestContextMiddleware,
)
from todo_api.http.problems import (
    PROBLEM_JSON,
    STATUS_TITLES,
    Problem,
    ValidationItem,
    install_error_handlers,
)
from todo_api.http.ratelimit import RateLimiter, RateLimitMiddleware
from todo_api.http.request_limits import RequestLimitsMiddleware
from todo_api.http.timeouts import RequestTimeoutMiddleware
from todo_api.mcp import server as mcp_server
from todo_api.observability import metrics
from todo_api.observability.logs import skip_process_details
from todo_api.observability.metrics import Metrics
from todo_api.observability.redaction import install_log_redaction
from todo_api.routes import changes, events, health, lists, profile, reminders, tags, tasks
from todo_api.services.cursors import CursorCodec
from todo_api.services.quotas import Quotas

log = logging.getLogger("todo_api")

EXPOSED_HEADERS = [
    "Link",
    "Location",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
    "ETag",
    "Idempotency-Replayed",
    "Ignored-Query-Params",
    "Preference-Applied",
]


#: The origins CORS allows in development when `CORS_ORIGINS` is not set: any port on a
#: loopback host, over plain HTTP (what `next dev`, Vite and friends serve).
LOCAL_ORIGINS = r"http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class IsolationNotEnforced(RuntimeError):
    """Production refuses to serve when PostgreSQL would not enforce row-level security."""


def _cursor_key(settings: Settings) -> bytes:
    # Every instance of a deployment shares its auth settings, so they all derive the
    # same key and accept each other's cursors.
    material = "|".join(
        (
            settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
            settings.better_auth_secret.get_secret_value() if settings.better_auth_secret else "",
            settings.better_auth_url or "",
            settings.jwt_jwks_url or "",
        )
    )
    return hashlib.sha256(b"todo-api/cursor/v1|" + material.encode()).digest()


def _ticket_key(settings: Settings) -> bytes:
    return hashlib.sha256(b"todo-api/event-ticket/v1|" + _cursor_key(settings)).digest()


def _log_salt(settings: Settings) -> bytes:
    # Without LOG_USER_SALT, a salt derived from the deployment's auth settings: stable
    # across instances, and unknown to anyone reading the logs without the secrets.
    if settings.log_user_salt is not None:
        return settings.log_user_salt.get_secret_value().encode()
    return hashlib.sha256(b"todo-api/log-user/v1|" + _cursor_key(settings)).digest()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    server = None
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
    else:
        # Development without configuration: `todo-api serve` has usually started and
        # migrated the embedded server already; joining it again is cheap.
        from todo_api.migrations import run_migrations  # Alembic is slow to import

        url, server = embedded.start(settings.data_dir)
        await run_migrations(url)
    database = Database.from_url(url, settings)
    verifier = TokenVerifier(AuthConfig.from_settings(settings))
    try:
        await database.open()
        try:
            await database.ensure_inspected()
        except DatabaseUnavailable:
            # Serve anyway: requests get 503 until the database answers, then the
            # first one inspects it. /readyz says so meanwhile.
            log.warning("database unreachable at start-up: %s", redact(database.plan.url))
        else:
            _report_isolation(database, settings, database.plan.url)
        await verifier.start()
        if settings.cors_allows_local_origins:
            log.info(
                "CORS: CORS_ORIGINS is not set; allowing local development origins "
                "(http://localhost:*, http://127.0.0.1:*, http://[::1]:*). "
                "Set CORS_ORIGINS for any other frontend (required in production)."
            )
        app.state.database = database
        app.state.verifier = verifier
        app.state.shared = Shared(
            database=database,
            settings=settings,
            quotas=app.state.quotas,
            codec=CursorCodec(_cursor_key(settings)),
            query_names=query_names(app.openapi()),
        )
        app.state.readiness = health.ReadinessProbe(database)
        app.state.ticket_codec = TicketCodec(_ticket_key(settings))
        app.state.events = events_hub(database, settings, app.state.metrics)
        await app.state.events.start()
        if settings.is_production:
            _freeze_start_up_objects()
        async with mcp_server.serve_mcp(app):
            yield
    finally:
        if hasattr(app.state, "events"):
            await app.state.events.stop()
        await verifier.aclose()
        await database.dispose()
        if app.state.rate_limiter is not None:
            await app.state.rate_limiter.aclose()
        del server  # the embedded server stops when its last handle is released


def _freeze_start_up_objects() -> None:
    """Keep what start-up built (modules, routes, models, schema caches: ~150,000
    objects) out of the cyclic garbage collector's full passes, which otherwise walk all
    of it every few thousand requests and stall the worker for ~100 ms each time."""
    gc.collect()
    gc.freeze()


def _report_isolation(database: Database, settings: Settings, url: str) -> None:
    if database.isolation_enforced:
        log.info("row-level security is enforced by the database")
        return
    log.warning("row-level security is NOT enforced for %s", redact(url))
    if settings.is_production:
        raise IsolationNotEnforced(
            "the database role bypasses row-level security; see README, 'Deploy'"
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the ASGI application."""
    settings = settings or get_settings()
    app = FastAPI(
        # The routes go straight into the app's router: one flat list the router walks
        # once per request (an included router would be walked again for each of its
        # routes). The router tries them in order, and most requests are for tasks.
        routes=_routes(settings),
        title="Todo API",
        version="0.1.0",
        summary="Multi-user tasks on PostgreSQL, for frontends that sign users in with JWTs.",
        lifespan=lifespan,
        # Never a redirect built from the request's Host (trailing slashes on `/api` paths
        # are served directly, see `PathUserMiddleware`).
        redirect_slashes=False,
        docs_url="/docs" if settings.show_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.show_docs else None,
        telemetry=None if settings.otel_enabled else _NO_TELEMETRY,
    )
    app.state.settings = settings
    app.state.quotas = Quotas(
        tasks=settings.max_tasks_per_user,
        lists=settings.max_lists_per_user,
        tags=settings.max_tags_per_user,
    )
    install_log_redaction()
    skip_process_details()
    #: `None` when RATE_LIMIT_ENABLED is false; `.degraded` says whether Redis answers.
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_error_handlers(app)

    app.state.metrics = Metrics()
    app.state.metrics.app_state = app.state

    # Added innermost first: the request meets them in the reverse order.
    # Inside the time limit: it reads JSON bodies, and a client trickling one in must
    # not hold the request open beyond REQUEST_TIMEOUT_SECONDS.
    app.add_middleware(RequestLimitsMiddleware)
    app.add_middleware(RequestTimeoutMiddleware, seconds=settings.request_timeout_seconds)
    app.add_middleware(PathUserMiddleware)
    if publishes_to_redis(settings):
        assert settings.redis_url is not None
        app.add_middleware(ChangePublisher, redis_url=settings.redis_url.get_secret_value())
    app.add_middleware(RateLimitMiddleware)
    app.add_middleware(AuthenticationMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ErrorSafetyNetMiddleware)
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=LOCAL_ORIGINS if settings.cors_allows_local_origins else None,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "X-Request-ID",
            "Last-Event-ID",
            # Sent by MCP clients (Streamable HTTP) running in a browser.
            "Mcp-Protocol-Version",
            "Mcp-Method",
            "Mcp-Name",
        ],
        expose_headers=EXPOSED_HEADERS,
        # Safe: the API authenticates by header only (cookies never count), and the
        # allowed origin is echoed, never `*`. Frontends that fetch with
        # `credentials: 'include'` need it.
        allow_credentials=True,
        max_age=600,
    )
    app.add_middleware(AllowedHostsMiddleware, allowed_hosts=settings.hosts_served)
    app.add_middleware(
        RequestContextMiddleware, hsts=settings.is_production, user_salt=_log_salt(settings)
    )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _routes(settings: Settings) -> list[BaseRoute]:
    """Every route of the app, in the order the router tries them."""
    routers = [health.router]
    if settings.show_metrics:
        routers.append(metrics.router)
    routers += [tasks.router, lists.router, tags.router, reminders.router]
    routers += [changes.router, events.router, profile.router]
    return [route for router in routers for route in router.routes] + mcp_server.routes()


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "integer"}}


def _rate_limited() -> dict[str, Any]:
    return {
        "description": "Too Many Requests: the caller's (or, without a valid token, the "
        "client address's) budget is spent.",
        "headers": {
            "Retry-After": _header("Seconds until a request will be accepted again."),
            "RateLimit-Limit": _header("Requests allowed per minute."),
            "RateLimit-Remaining": _header("Requests left in the budget: 0."),
            "RateLimit-Reset": _header("Seconds until the whole budget is available again."),
        },
    }


#: `/api/{user_id}`: declared here rather than by a dependency every request would pay for.
_USER_ID_PARAMETER: dict[str, Any] = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "description": "The token's `sub`, or `me`.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "title": "User Id",
        "description": "The token's `sub`, or `me`.",
        "examples": ["me"],
    },
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with problem+json error bodies and the bearer scheme declared."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=(
            "Send `Authorization: Bearer <JWT>` on every `/api` request. "
            "Errors are RFC 9457 `application/problem+json` documents."
        ),
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["Problem"].pop("$defs", None)
    schemas["ValidationItem"] = ValidationItem.model_json_schema()
    components["securitySchemes"] = {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT from Better Auth's JWT plugin or any configured issuer.",
        }
    }
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/api/{user_id}"):
                operation["parameters"] = [_USER_ID_PARAMETER, *operation.get("parameters", [])]
            if path.startswith("/api"):
                operation["security"] = [{"bearerAuth": []}]
                # Middleware answers these for any API operation; document them there.
                operation["responses"].setdefault("429", _rate_limited())
                if "requestBody" in operation:
                    operation["responses"].setdefault("413", {"description": STATUS_TITLES[413]})
                    operation["responses"].setdefault("415", {"description": STATUS_TITLES[415]})
            for code, response in operation.get("responses", {}).items():
                if code[:1] in {"4", "5"}:
                    response["content"] = problem_content
    app.openapi_schema = schema
    return schema
