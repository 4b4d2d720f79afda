"""The `todo-api` command: tokens, schema, and a zero-configuration server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from tests.conftest import TEST_SECRET
from todo_api.cli import app

runner = CliRunner()
_CONFIG_VARS = (
    "DATABASE_URL",
    "DATABASE_MIGRATION_URL",
    "JWT_SECRET",
    "BETTER_AUTH_SECRET",
    "BETTER_AUTH_URL",
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "TODO_API_ENV",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in _CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_token_is_signed_with_the_configured_secret(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
    result = runner.invoke(
        app, ["token", "--user", "alice", "--email", "a@example.com", "--ttl", "60"]
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), TEST_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["email"] == "a@example.com"
    assert 55 <= claims["exp"] - claims["iat"] <= 60


def test_token_without_config_uses_one_local_dev_secret(clean_env: Path) -> None:
    first = runner.invoke(app, ["token", "--user", "alice"])
    second = runner.invoke(app, ["token", "--user", "bob"])
    secret = (clean_env / ".todo-api" / "dev-secret").read_text().strip()
    assert len(secret) >= 32
    assert jwt.decode(first.output.strip(), secret, algorithms=["HS256"])["sub"] == "alice"
    assert jwt.decode(second.output.strip(), secret, algorithms=["HS256"])["sub"] == "bob"


def test_token_refuses_in_production(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TODO_API_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example.com/app")
    monkeypatch.setenv("ALLOWED_HOSTS", "api.example.com")
    result = runner.invoke(app, ["token", "--user", "alice"])
    assert result.exit_code == 2
    assert "production" in result.output


def test_serve_without_auth_refuses_a_public_bind(clean_env: Path) -> None:
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"])  # noqa: S104
    assert result.exit_code == 2
    assert "refusing" in result.output
    assert not (clean_env / ".todo-api").exists()


def test_openapi_prints_the_schema(clean_env: Path) -> None:
    result = runner.invoke(app, ["openapi"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert "/api/{user_id}/tasks" in schema["paths"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def zero_config_server(clean_env: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    command = [sys.executable, "-m", "todo_api.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603
        command, cwd=clean_env, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not become ready")
        yield base, clean_env
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    # A graceful stop also stops the embedded database it started.
    assert process.returncode == 0
    assert not (clean_env / ".todo-api" / "pgdata" / "postmaster.pid").exists()


def _cli_token(cwd: Path, user: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _CONFIG_VARS}
    output = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "todo_api.cli", "token", "--user", user],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return output.stdout.strip()


def test_zero_config_server_serves_two_isolated_users(
    zero_config_server: tuple[str, Path],
) -> None:
    base, cwd = zero_config_server
    alice = {"Authorization": f"Bearer {_cli_token(cwd, 'alice')}"}
    bob = {"Authorization": f"Bearer {_cli_token(cwd, 'bob')}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        created = http.post("/api/me/tasks", json={"title": "Buy milk"}, headers=alice)
        assert created.status_code == 201
        task_id = created.json()["id"]
        assert http.patch(f"/api/me/tasks/{task_id}/complete", headers=alice).json()["completed"]
        assert [t["id"] for t in http.get("/api/me/tasks", headers=alice).json()] == [task_id]
        assert http.get("/api/me/tasks", headers=bob).json() == []
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            body = {"title": "mine now"} if method in {"PUT", "PATCH"} else None
            response = http.request(method, f"/api/me/tasks/{task_id}", json=body, headers=bob)
            assert response.status_code == 404, (method, response.text)
        assert http.delete(f"/api/me/tasks/{task_id}", headers=alice).status_code == 200
        assert http.get("/api/me/tasks", headers=alice).json() == []
