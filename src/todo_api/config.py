"""Settings, read from the environment (and a `.env` file) once per process."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_BYTES = 32

# Placeholders people copy out of examples; never acceptable as a real key.
_PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "change-me", "secret", "your-secret-here", "replace-me", "xxxxxxxx"}
)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the service. Environment variable names are the field names in capitals."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    todo_api_env: Literal["development", "production"] = "development"

    # Database
    database_url: SecretStr | None = None
    database_migration_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=5, ge=0, le=200)
    database_pool_timeout: float = Field(default=5.0, gt=0, le=60)
    database_pool_recycle: int = Field(default=240, ge=10)
    database_connect_timeout: float = Field(default=15.0, gt=0, le=120)
    database_statement_timeout_ms: int = Field(default=10_000, ge=0)
    request_timeout_seconds: float = Field(default=30.0, ge=0)
    database_pgbouncer: bool | None = None
    data_dir: Path = Path(".todo-api")

    # Auth
    jwt_secret: SecretStr | None = None
    better_auth_secret: SecretStr | None = None
    better_auth_url: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"]
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    #: A connection that has not sent a request's complete line and headers within this
    #: many seconds (of opening, or of the request's first byte) is closed.
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: A request line plus headers larger than this is answered 431.
    max_header_bytes: int = Field(default=65_536, ge=8192, le=1_048_576)
    #: The service's external base URL, for the absolute URLs of the MCP endpoint's
    #: protected-resource metadata (RFC 9728); unset, they follow the request.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$")
    docs_enabled: bool | None = None
    #: `Host` values served (`api.example.com`, `*.example.com`, `*`); required in
    #: production, every host in development.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: `/metrics`: on outside production; in production off unless enabled or a token is set.
    metrics_enabled: bool | None = None
    #: When set, `/metrics` requires `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: SecretStr | None = None
    #: FastAPI's own OpenTelemetry instrumentation (spans, metrics, logs through the
    #: providers the process configures). Off by default: checking for providers on
    #: every request costs CPU even when none is configured.
    otel_enabled: bool = False

    # Abuse limits: per verified user, and per client address for unauthenticated traffic
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = Field(default=600, ge=1)
    rate_limit_anon_per_minute: int = Field(default=120, ge=1)
    #: Shared budget across instances; in-memory (per process) without it.
    redis_url: SecretStr | None = None
    rate_limit_key_prefix: str = Field(default="todo-api:ratelimit", min_length=1, max_length=100)
    #: Salt for the user hash in request logs; derived from the auth settings when unset.
    log_user_salt: SecretStr | None = None

    # Per-user quotas (checked against counters on the profile row, never by counting)
    max_tasks_per_user: int = Field(default=10_000, ge=1)
    max_lists_per_user: int = Field(default=200, ge=1)
    max_tags_per_user: int = Field(default=500, ge=1)

    # Concurrent clients
    #: Writes to an existing object without `If-Match` (or a batch operation without
    #: `if_version`) are refused with 428.
    require_if_match: bool = False
    #: How long a POST's response is kept for replay under its `Idempotency-Key`.
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    #: Per user, at most this many stored responses and this many stored (compressed)
    #: bytes; storing one more forgets the oldest first.
    idempotency_max_keys_per_user: int = Field(default=1000, ge=1)
    idempotency_max_bytes_per_user: int = Field(default=4 * 1_048_576, ge=65_536)
    #: How long the change feed keeps entries; an older cursor gets 410.
    changes_retention_days: int = Field(default=30, ge=1, le=3650)

    # Live updates (`GET /api/{user_id}/events`)
    #: How a worker learns of other instances' commits: `listen` (PostgreSQL LISTEN on a
    #: direct connection), `redis` (pub/sub on REDIS_URL), `poll` (one query per interval
    #: for all the worker's streams), `auto` (`redis` with REDIS_URL, else `listen`, or
    #: `poll` behind PgBouncer unless EVENTS_LISTEN_URL is set).
    events_fanout: Literal["auto", "listen", "redis", "poll"] = "auto"
    #: A direct (not pooled) URL for LISTEN; DATABASE_URL when unset.
    events_listen_url: SecretStr | None = None
    events_poll_interval_seconds: float = Field(default=0.5, gt=0, le=30)
    events_keepalive_seconds: float = Field(default=15.0, gt=0, le=15)
    events_retry_ms: int = Field(default=2000, ge=100, le=60_000)
    events_ticket_ttl_seconds: int = Field(default=30, ge=1, le=60)
    events_max_streams_per_user: int = Field(default=8, ge=1, le=1000)
    events_max_streams_per_worker: int = Field(default=2000, ge=1, le=100_000)

    _split_lists = field_validator(
        "cors_origins", "forwarded_allow_ips", "allowed_hosts", mode="before"
    )(_split_csv)

    @field_validator("jwt_secret", "better_auth_secret")
    @classmethod
    def _secret_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if raw.strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder value; generate one with `openssl rand -base64 32`")
        if len(raw.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes long")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("list the frontend origins explicitly; '*' is not accepted")
        return [origin.rstrip("/") for origin in value]

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)
        return value

    @field_validator("better_auth_url", "public_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.is_production:
            if not self.auth_configured:
                raise ValueError(
                    "TODO_API_ENV=production needs JWT_SECRET, BETTER_AUTH_SECRET, "
                    "BETTER_AUTH_URL or JWT_JWKS_URL"
                )
            if self.database_url is None:
                raise ValueError(
                    "TODO_API_ENV=production needs DATABASE_URL; "
                    "the embedded database is for development only"
                )
            if not self.allowed_hosts:
                raise ValueError(
                    "TODO_API_ENV=production needs ALLOWED_HOSTS: the host names the API "
                    "is published under (api.example.com, *.example.com), or * to leave "
                    "the check to a proxy in front"
                )
        return self

    @property
    def is_production(self) -> bool:
        return self.todo_api_env == "production"

    @property
    def auth_configured(self) -> bool:
        return any(
            (self.jwt_secret, self.better_auth_secret, self.better_auth_url, self.jwt_jwks_url)
        )

    @property
    def cors_allows_local_origins(self) -> bool:
        """Development without `CORS_ORIGINS`: any loopback origin may call the API (a
        frontend's dev server on `http://localhost:3000`, Vite's on 5173, ...)."""
        return not self.is_production and not self.cors_origins

    @property
    def hosts_served(self) -> list[str]:
        """The `Host` allow list in force (`*`: any)."""
        return self.allowed_hosts or ["*"]

    @property
    def show_metrics(self) -> bool:
        if self.metrics_enabled is not None:
            return self.metrics_enabled
        return not self.is_production or self.metrics_token is not None

    @property
    def show_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.is_production


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
