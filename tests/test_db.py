"""Connection URLs as Neon, Heroku and libpq print them become correct asyncpg settings."""

from __future__ import annotations

import ssl

import pytest

from todo_api.db.urls import plan_connection, redact

NEON_DIRECT = (
    "postgresql://alex:s3cret@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)
NEON_POOLED = NEON_DIRECT.replace("-123456.", "-123456-pooler.")


def test_neon_url_gets_verified_tls_and_no_libpq_keywords() -> None:
    plan = plan_connection(NEON_DIRECT)
    assert plan.url.startswith("postgresql+asyncpg://alex:s3cret@ep-cool-darkness-123456")
    assert "sslmode" not in plan.url and "channel_binding" not in plan.url
    context = plan.connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert plan.pgbouncer is False
    assert "statement_cache_size" not in plan.connect_args


def test_pooler_host_turns_statement_caches_off() -> None:
    plan = plan_connection(NEON_POOLED)
    assert plan.pgbouncer is True
    assert plan.connect_args["statement_cache_size"] == 0
    assert plan.connect_args["prepared_statement_cache_size"] == 0
    assert "server_settings" not in plan.connect_args  # no startup parameters
    name = plan.connect_args["prepared_statement_name_func"]
    assert name() != name()


def test_pgbouncer_can_be_forced_on_any_host() -> None:
    plan = plan_connection("postgresql://u@db.internal:6432/app", pgbouncer=True)
    assert plan.pgbouncer is True


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
def test_schemes_are_normalised(scheme: str) -> None:
    plan = plan_connection(f"{scheme}://u:p@127.0.0.1:5432/db")
    assert plan.url == "postgresql+asyncpg://u:p@127.0.0.1:5432/db"
    assert plan.connect_args["ssl"] is False


def test_unix_socket_url_is_kept() -> None:
    plan = plan_connection("postgresql://postgres:@/postgres?host=/tmp/sock")
    assert "host=%2Ftmp%2Fsock" in plan.url
    assert plan.connect_args["ssl"] is False


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="postgres"):
        plan_connection("mysql://u@h/db")


def test_connect_timeout_from_url_wins() -> None:
    plan = plan_connection("postgresql://u@127.0.0.1/db?connect_timeout=3")
    assert plan.connect_args["timeout"] == 3.0


def test_redact_hides_the_password() -> None:
    assert "s3cret" not in redact(NEON_DIRECT)
