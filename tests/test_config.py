"""Settings refuse what is unsafe, above all in production."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from todo_api.config import Settings

SECRET = "s" * 40
REMOTE_DB = "postgresql://app@db.example.com/app"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_development_needs_nothing() -> None:
    settings = _settings()
    assert not settings.is_production
    assert settings.show_docs


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database_url": REMOTE_DB, "allowed_hosts": "api.example.com"}, "JWT_SECRET"),
        ({"jwt_secret": SECRET, "allowed_hosts": "api.example.com"}, "DATABASE_URL"),
        ({"jwt_secret": SECRET, "database_url": REMOTE_DB}, "ALLOWED_HOSTS"),
    ],
    ids=["no-auth", "embedded-database", "no-host-allow-list"],
)
def test_production_refuses_missing_pieces(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(todo_api_env="production", **values)


def test_production_with_auth_and_database_starts_with_docs_off() -> None:
    settings = _settings(
        todo_api_env="production",
        jwt_secret=SECRET,
        database_url=REMOTE_DB,
        allowed_hosts="api.example.com",
    )
    assert not settings.show_docs
    assert not settings.show_metrics


@pytest.mark.parametrize("field", ["jwt_secret", "better_auth_secret"])
def test_short_secrets_are_refused(field: str) -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        _settings(**{field: "too-short"})


def test_placeholder_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        _settings(jwt_secret="changeme")


def test_wildcard_cors_origin_is_refused() -> None:
    with pytest.raises(ValidationError, match="explicitly"):
        _settings(cors_origins="*")


def test_lists_come_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example.com/, https://b.example.com")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8,127.0.0.1")
    settings = _settings()
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.forwarded_allow_ips == ["10.0.0.0/8", "127.0.0.1"]


def test_better_auth_url_loses_its_trailing_slash() -> None:
    assert _settings(better_auth_url="https://app.example.com/").better_auth_url == (
        "https://app.example.com"
    )


@pytest.mark.parametrize("url", ["api.example.com", "https://api.example.com/x?y=1", "ftp://a"])
def test_public_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, public_url=url)  # type: ignore[call-arg]
