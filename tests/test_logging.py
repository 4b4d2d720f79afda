"""Logs: one structured line per request, and never a token, a query string, a raw user
id or task text — whatever the log level, in our loggers or the libraries' ones."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import Integer, bindparam, select, text

from tests.conftest import TEST_SECRET, User, make_settings, make_token
from todo_api import cli
from todo_api.config import Settings
from todo_api.db.statements import Statement
from todo_api.deps import ContextDep, ContextRoute
from todo_api.http.middleware import user_hash
from todo_api.main import create_app
from todo_api.observability.logs import AccessLog, JsonFormatter, logging_config

# Everything a request touches that could log: ours, the database stack, the server.
LOGGERS = ["", "todo_api", "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg"]
LOGGERS += ["uvicorn", "uvicorn.error", "uvicorn.access", "redis"]
# The test's own HTTP client logs the URLs it requests; that is not the server's log.
CLIENT_LOGGERS = ("httpx", "httpcore")


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every logger at DEBUG (SQLAlchemy's default is WARNING: lift it too)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def rendered(records: list[logging.LogRecord]) -> list[str]:
    """Each server-side record as the production formatter writes it (message, extras,
    traceback)."""
    formatter = JsonFormatter()
    return [formatter.format(r) for r in records if not r.name.startswith(CLIENT_LOGGERS)]


def assert_absent(lines: list[str], secrets: dict[str, str]) -> None:
    for label, secret in secrets.items():
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{label} appears in the logs: {leaks[:3]}"


def access_lines(records: list[logging.LogRecord]) -> list[dict[str, Any]]:
    return [vars(r) for r in records if r.name == "todo_api.access"]


async def test_a_full_request_cycle_leaves_no_secret_in_any_log(
    all_logs: pytest.LogCaptureFixture, client: httpx.AsyncClient, new_user: Any
) -> None:
    marker = uuid.uuid4().hex
    user: User = new_user(email=f"mail-{marker}@example.com", name=f"Name {marker}")
    secrets = {
        "title": f"title-{marker}",
        "description": f"description-{marker}",
        "new title": f"renamed-{marker}",
        "query value": f"query-{marker}",
        "invalid text": f"invalid-{marker}",
        "token": user.token,
        "foreign token": make_token(f"other-{marker}", secret="x" * 40),
        "user id": user.id,
        "email": f"mail-{marker}",
    }

    task = await user.create_task(secrets["title"], description=secrets["description"])
    listed = await user.get(
        "/api/me/tasks", params={"status": "all", "limit": 5, "q": secrets["query value"]}
    )
    patched = await user.patch(f"/api/me/tasks/{task['id']}", json={"title": secrets["new title"]})
    refused = await client.get(
        "/api/me/tasks",
        params={"q": secrets["query value"]},
        headers={"Authorization": f"Bearer {secrets['foreign token']}"},
    )
    invalid = await user.post(
        "/api/me/tasks", json={"title": secrets["invalid text"], "owner": secrets["invalid text"]}
    )
    deleted = await user.delete(f"/api/me/tasks/{task['id']}")
    assert [r.status_code for r in (listed, patched, refused, invalid, deleted)] == [
        200,
        200,
        401,
        422,
        200,
    ]

    records = all_logs.records
    # The capture really saw the requests (else the check below proves nothing).
    assert len(access_lines(records)) >= 6
    assert_absent(rendered(records), secrets)


async def test_each_request_logs_one_line_with_route_template_and_user_hash(
    all_logs: pytest.LogCaptureFixture, alice: User
) -> None:
    task = await alice.create_task()
    all_logs.clear()
    response = await alice.patch(
        f"/api/{alice.id}/tasks/{task['id']}",
        json={"completed": True},
        headers={"X-Request-ID": "log-test-1"},
    )
    assert response.status_code == 200
    lines = [line for line in access_lines(all_logs.records) if line["request_id"] == "log-test-1"]
    assert len(lines) == 1
    line = lines[0]
    assert line["method"] == "PATCH"
    assert line["route"] == "/api/{user_id}/tasks/{task_id}"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["user_hash"] is not None and len(line["user_hash"]) == 16
    assert line["user_hash"] != alice.id


async def test_the_access_line_names_ignored_query_parameters(
    all_logs: pytest.LogCaptureFixture, alice: User
) -> None:
    response = await alice.get(
        "/api/me/tasks", params={"filter": "secret-value"}, headers={"X-Request-ID": "log-ign-1"}
    )
    assert response.status_code == 200
    (line,) = [line for line in access_lines(all_logs.records) if line["request_id"] == "log-ign-1"]
    assert line["ignored_params"] == "filter"
    assert_absent(rendered(all_logs.records), {"query value": "secret-value"})


async def test_user_hash_is_stable_per_user_and_differs_between_users(
    all_logs: pytest.LogCaptureFixture, alice: User, bob: User
) -> None:
    for user in (alice, alice, bob):
        await user.get("/api/me/tasks")
    hashes = [line["user_hash"] for line in access_lines(all_logs.records)]
    assert hashes[0] == hashes[1] != hashes[2]


async def test_user_hash_depends_on_the_deployment_salt(
    all_logs: pytest.LogCaptureFixture, owner_url: str
) -> None:
    # Without the salt, a reader of the logs cannot test guesses of who a hash is.
    logged: list[str] = []
    for salt in ("salt-number-one", "salt-number-two"):
        app = create_app(make_settings(owner_url, log_user_salt=salt))
        logged.append(await _logged_user_hash(app, all_logs))
    assert logged[0] != logged[1]
    assert logged[0] == user_hash("alice-salted", b"salt-number-one")


async def _logged_user_hash(app: FastAPI, logs: pytest.LogCaptureFixture) -> str:
    request_id = uuid.uuid4().hex
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {make_token('alice-salted')}"}
            await http.get("/api/me", headers={**headers, "X-Request-ID": request_id})
    (line,) = [r for r in access_lines(logs.records) if r["request_id"] == request_id]
    value: str = line["user_hash"]
    return value


async def test_unauthenticated_request_logs_no_user(
    all_logs: pytest.LogCaptureFixture, client: httpx.AsyncClient
) -> None:
    await client.get("/api/me/tasks", headers={"X-Request-ID": "log-test-anon"})
    (line,) = [r for r in access_lines(all_logs.records) if r["request_id"] == "log-test-anon"]
    assert line["status"] == 401
    assert line["user_hash"] is None


async def test_unhandled_error_log_carries_no_request_body(
    all_logs: pytest.LogCaptureFixture, owner_url: str
) -> None:
    # A handler that reads the body and then fails: the traceback is logged, the body not.
    app = create_app(make_settings(owner_url))
    marker = f"body-{uuid.uuid4().hex}"

    async def explode(payload: dict[str, Any]) -> None:
        raise RuntimeError("handler failed")

    app.add_api_route("/boom", explode, methods=["POST"])
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post("/boom?secret=" + marker, json={"text": marker})
    assert response.status_code == 500
    assert marker not in response.text
    errors = [r for r in all_logs.records if r.name == "todo_api.errors"]
    assert errors and errors[0].exc_info is not None  # the traceback is kept for operators
    assert_absent(rendered(all_logs.records), {"request body or query": marker})


async def _error_logged_for(
    owner_url: str, records: pytest.LogCaptureFixture, statement: Any, marker: str
) -> logging.LogRecord:
    """POST `marker` to a route that runs `statement` with it as the parameter `v` (and
    fails); returns the one error record logged."""
    app = create_app(make_settings(owner_url))

    async def explode(ctx: ContextDep, payload: dict[str, Any]) -> None:
        await ctx.session.execute(statement, {"v": payload["text"]})

    app.router.add_api_route(
        "/api/me/boom", explode, methods=["POST"], route_class_override=ContextRoute
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {make_token('boom-user')}"}
            response = await http.post("/api/me/boom", json={"text": marker}, headers=headers)
    assert response.status_code == 500
    (error,) = [r for r in records.records if r.name == "todo_api.errors"]
    return error


async def test_database_error_log_carries_no_statement_parameters(
    all_logs: pytest.LogCaptureFixture, owner_url: str
) -> None:
    # Logged with the traceback of an unexpected database error, bound parameters would
    # put task text in the error log.
    marker = f"param-{uuid.uuid4().hex}"
    statement = text("SELECT 1 / 0 WHERE :v <> ''")
    error = await _error_logged_for(owner_url, all_logs, statement, marker)
    assert error.exc_info is not None
    assert "division by zero" in JsonFormatter().format(error)  # the cause is still told
    assert_absent(rendered(all_logs.records), {"statement parameter": marker})


async def test_a_refused_parameter_value_is_not_in_the_error_log(
    all_logs: pytest.LogCaptureFixture, owner_url: str
) -> None:
    # asyncpg's message for a value it cannot encode quotes the value.
    marker = f"value-{uuid.uuid4().hex}"
    statement = Statement(select(bindparam("v", type_=Integer)))
    error = await _error_logged_for(owner_url, all_logs, statement, marker)
    assert "invalid input for query argument" in JsonFormatter().format(error)
    assert_absent(rendered(all_logs.records), {"statement parameter": marker})


def test_serve_turns_off_the_servers_access_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # Uvicorn's access log prints the raw path and query string: it must stay off, and
    # forwarded headers must be honoured only from FORWARDED_ALLOW_IPS.
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    settings = Settings(_env_file=None, jwt_secret=TEST_SECRET, forwarded_allow_ips="10.0.0.0/8")  # type: ignore[call-arg]
    cli._run_uvicorn(settings, "127.0.0.1", 8000, 1, False)
    (kwargs,) = calls
    assert kwargs["access_log"] is False
    assert kwargs["proxy_headers"] is True
    assert kwargs["forwarded_allow_ips"] == ["10.0.0.0/8"]


def _production_logging(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The root handler the server's logging configuration installs, writing to a buffer."""
    config = logging_config()
    assert config["root"]["handlers"] == ["stderr"]
    assert config["handlers"]["stderr"]["class"] == "logging.StreamHandler"
    assert config["formatters"][config["handlers"]["stderr"]["formatter"]]["()"] is JsonFormatter
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    monkeypatch.setattr(root, "level", logging.INFO)
    return stream


def test_access_lines_written_directly_match_the_formatter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _production_logging(monkeypatch)
    handler = logging.getLogger().handlers[0]
    records: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handle", lambda record: records.append(record))
    fields = {"request_id": "r-1", "method": "GET", "route": "/api/{user_id}/tasks", "status": 200}
    before = datetime.now(UTC)
    AccessLog("todo_api.access").info("request", {**fields, "duration_ms": 1.5, "user_hash": None})
    after = datetime.now(UTC)

    assert records == []  # written without a record, straight to the handler's stream
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    written = json.loads(lines[0])
    record = logging.getLogger("todo_api.access").makeRecord(
        "todo_api.access", logging.INFO, "", 0, "request", (), None,
        extra={**fields, "duration_ms": 1.5, "user_hash": None},
    )  # fmt: skip
    expected = json.loads(JsonFormatter().format(record))
    assert written.pop("time") and expected.pop("time")
    assert written == expected
    stamp = datetime.fromisoformat(json.loads(lines[0])["time"])
    assert before - timedelta(microseconds=1) <= stamp <= after


def test_access_lines_go_through_logging_when_anything_else_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _production_logging(monkeypatch)
    seen: list[str] = []

    class Tap(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record.getMessage())
            return record.__dict__.get("status") != 404

    handler = logging.getLogger().handlers[0]
    handler.addFilter(Tap())
    access = AccessLog("todo_api.access")
    access.info("request", {"status": 200})
    access.info("request", {"status": 404})
    assert seen == ["request", "request"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [200]
    # A level above INFO silences the lines on either path.
    handler.removeFilter(handler.filters[0])
    logging.getLogger("todo_api.access").setLevel(logging.WARNING)
    try:
        access.info("request", {"status": 201})
    finally:
        logging.getLogger("todo_api.access").setLevel(logging.NOTSET)
    assert len(stream.getvalue().splitlines()) == 1


async def test_access_lines_of_one_loop_turn_are_written_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _production_logging(monkeypatch)
    writes: list[str] = []
    original_write = stream.write

    def counting_write(text: str) -> int:
        writes.append(text)
        return original_write(text)

    monkeypatch.setattr(stream, "write", counting_write)
    access = AccessLog("todo_api.access")
    access.info("request", {"status": 200})
    access.info("request", {"status": 201})
    assert stream.getvalue() == ""  # not yet: at the end of this turn of the loop
    await asyncio.sleep(0)
    assert [json.loads(line)["status"] for line in stream.getvalue().splitlines()] == [200, 201]
    assert len(writes) == 1
    access.info("request", {"status": 202})
    await asyncio.sleep(0)
    assert len(stream.getvalue().splitlines()) == 3
