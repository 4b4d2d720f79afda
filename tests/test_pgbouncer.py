"""The service behind a real PgBouncer in transaction mode (what Neon's pooled URL is)."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import make_settings, make_token
from tests.dates import at, day
from todo_api.main import create_app

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pgbouncer_url(owner_url: str) -> Iterator[str]:
    if not Path(PGBOUNCER).exists():
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is required in CI (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed")
    target = urlsplit(owner_url)
    user = target.username or "postgres"
    database = target.path.lstrip("/")
    socket_dir = dict(parse_qsl(target.query)).get("host")
    host = socket_dir if not target.hostname else target.hostname
    # Not under pytest's private temp dir: PgBouncer drops root and must still read it.
    workdir = Path(tempfile.mkdtemp(prefix="todo-api-pgbouncer-"))
    workdir.chmod(0o755)
    port = _free_port()
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={host} port={target.port or 5432} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = 3
max_client_conn = 200
server_connect_timeout = 5
query_wait_timeout = 10
"""
    )
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; take the identity that can reach the server
        # (the embedded server's socket lives in a directory only its owner may enter).
        owner = pwd.getpwuid(os.stat(socket_dir).st_uid).pw_name if socket_dir else "postgres"
        command[1:1] = ["-u", owner]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
async def api(pgbouncer_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # More app connections than PgBouncer has server connections, so they are shared.
    settings = make_settings(pgbouncer_url, database_pgbouncer=True, database_pool_size=8)
    app = create_app(settings)
    async with LifespanManager(app):
        assert app.state.database.plan.pgbouncer
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as c:
            yield c


async def _user_session(api: httpx.AsyncClient, n: int) -> list[tuple[str, int]]:
    """One user's tour of every route family, returning (step, status) pairs."""
    user = f"pooled-{n}-{time.monotonic_ns()}"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    seen: list[tuple[str, int]] = []

    async def call(step: str, method: str, path: str, body: object = None) -> httpx.Response:
        response = await api.request(method, f"/api/me{path}", json=body, headers=headers)
        seen.append((step, response.status_code))
        return response

    cursor = (await call("feed cursor", "GET", "/changes")).json()["next"]
    listed = (await call("create list", "POST", "/lists", {"name": f"list {n}"})).json()
    task = (
        await call(
            "create task",
            "POST",
            "/tasks",
            {
                "title": f"task {n}",
                "tags": ["work", "Ünïcødé"],
                "priority": "high",
                "due_date": day(1),
                "remind_at": at(1, "09:00"),
            },
        )
    ).json()
    other = (await call("create second", "POST", "/tasks", {"title": "second"})).json()
    await call("list tasks", "GET", "/tasks?tag=work&sort=due_date")
    await call("search", "GET", "/tasks?q=task")
    await call("get task", "GET", f"/tasks/{task['id']}")
    keyed = {**headers, "Idempotency-Key": f"key-{n}"}
    for attempt in ("keyed create", "keyed retry"):
        response = await api.post("/api/me/tasks", json={"title": "once"}, headers=keyed)
        seen.append((attempt, response.status_code))
    etag = {**headers, "If-Match": f'"{task["version"]}"'}
    response = await api.patch(f"/api/me/tasks/{task['id']}", json={"title": "v2"}, headers=etag)
    seen.append(("if-match", response.status_code))
    await call("patch task", "PATCH", f"/tasks/{task['id']}", {"title": "renamed"})
    await call("put task", "PUT", f"/tasks/{task['id']}", {"title": "replaced"})
    await call("move", "POST", f"/tasks/{task['id']}/move", {"list_id": listed["id"]})
    await call("reminders", "GET", f"/reminders?until={at(2)}")
    await call("dismiss", "POST", f"/reminders/{task['id']}/dismiss")
    await call("complete", "PATCH", f"/tasks/{task['id']}/complete")
    await call(
        "batch",
        "POST",
        "/tasks/batch",
        {
            "operations": [
                {"op": "create", "data": {"title": "b"}},
                {"op": "delete", "id": other["id"]},
            ]
        },
    )
    await call("tags", "GET", "/tags")
    await call("lists", "GET", "/lists")
    await call("profile", "PATCH", "", {"timezone": "Europe/Paris"})
    await call("clear completed", "DELETE", "/tasks?status=completed")
    await call("delete list", "DELETE", f"/lists/{listed['id']}")
    await call("gone", "GET", f"/tasks/{task['id']}")
    feed = (await call("feed", "GET", f"/changes?since={cursor}")).json()
    assert any(change["op"] == "delete" for change in feed["changes"])
    return seen


async def test_every_route_works_concurrently_through_pgbouncer(api: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*(_user_session(api, n) for n in range(16)))
    failures = [(step, status) for seen in results for step, status in seen if status >= 400]
    assert failures == [("gone", 404)] * len(results), failures
    assert {status for seen in results for _, status in seen} <= {200, 201, 204, 404}


async def test_isolation_holds_through_pgbouncer(api: httpx.AsyncClient) -> None:
    alice = {"Authorization": f"Bearer {make_token('pooled-alice')}"}
    bob = {"Authorization": f"Bearer {make_token('pooled-bob')}"}
    task = (await api.post("/api/me/tasks", json={"title": "alice only"}, headers=alice)).json()
    reads = await asyncio.gather(
        *(api.get(f"/api/me/tasks/{task['id']}", headers=bob) for _ in range(20))
    )
    assert {r.status_code for r in reads} == {404}
    assert all(
        t["title"] != "alice only" for t in (await api.get("/api/me/tasks", headers=bob)).json()
    )
