"""Choosing and building a worker's event hub from the settings."""

from __future__ import annotations

from todo_api.config import Settings
from todo_api.db.database import Database
from todo_api.db.urls import plan_connection
from todo_api.events.hub import EventHub
from todo_api.observability.metrics import Metrics


def fanout_mode(settings: Settings, pgbouncer: bool) -> str:
    """`redis` with `REDIS_URL`, else `listen`, unless configured otherwise or behind
    PgBouncer without a direct URL (`poll`)."""
    if settings.events_fanout != "auto":
        return settings.events_fanout
    if settings.redis_url is not None:
        return "redis"
    if pgbouncer and settings.events_listen_url is None:
        return "poll"
    return "listen"


def publishes_to_redis(settings: Settings) -> bool:
    """Whether writes must publish to Redis (known before the database is planned)."""
    if settings.redis_url is None:
        return False
    return settings.events_fanout in {"auto", "redis"}


def events_hub(database: Database, settings: Settings, metrics: Metrics) -> EventHub:
    mode = fanout_mode(settings, database.plan.pgbouncer)
    if mode == "redis" and settings.redis_url is None:
        raise RuntimeError("EVENTS_FANOUT=redis needs REDIS_URL")
    listen_plan = None
    if mode == "listen":
        listen_plan = database.plan
        if settings.events_listen_url is not None:
            # A LISTEN connection must be a real session, never a pooler's transaction.
            listen_plan = plan_connection(
                settings.events_listen_url.get_secret_value(),
                pgbouncer=False,
                connect_timeout=settings.database_connect_timeout,
            )
    return EventHub(
        mode=mode,
        database=database,
        listen_plan=listen_plan,
        poll_interval=settings.events_poll_interval_seconds,
        per_user=settings.events_max_streams_per_user,
        per_worker=settings.events_max_streams_per_worker,
        observe_lag=metrics.events_lag.observe,
        redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
    )
