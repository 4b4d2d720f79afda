"""Live updates through real HTTP, against two running instances on one database:
changes written through instance A arrive as events on a stream held by instance B."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings, make_token
from tests.live_server import serve
from tests.sse import Event, EventReader, open_stream
from todo_api.main import create_app

#: A server with a stream still open waits this long before cutting it on shutdown.
_GRACE = {"timeout_graceful_shutdown": 2}


@pytest.fixture(scope="module")
def instances(owner_url: str) -> Iterator[tuple[str, str]]:
    with (
        serve(create_app(make_settings(owner_url)), **_GRACE) as first,
        serve(create_app(make_settings(owner_url)), **_GRACE) as second,
    ):
        yield first, second


class Client:
    """A user with a fresh id and a real token, talking to both instances."""

    def __init__(self, http: httpx.AsyncClient, ttl: int = 600) -> None:
        self.http = http
        self.id = f"sse-{uuid.uuid4().hex[:12]}"
        self.headers = {"Authorization": f"Bearer {make_token(self.id, ttl=ttl)}"}

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def create(self, base: str, title: str) -> dict[str, Any]:
        response = await self.call("POST", f"{base}/api/me/tasks", json={"title": title})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def feed_since(self, base: str, cursor: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"{base}/api/me/changes", params={"since": cursor})
        assert response.status_code == 200, response.text
        changes: list[dict[str, Any]] = response.json()["changes"]
        return changes


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as client:
        yield client


async def _ready(reader: EventReader) -> Event:
    assert reader.response.status_code == 200
    assert reader.response.headers["content-type"].startswith("text/event-stream")
    event = await reader.next()
    assert event is not None
    assert event.event == "ready"
    return event


async def test_every_kind_of_write_on_one_instance_arrives_on_the_other(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    async with open_stream(http, f"{b}/api/me/events", user.headers) as reader:
        ready = await _ready(reader)
        assert ready.id is not None
        assert ready.json() == {"cursor": ready.id}
        assert reader.retry is not None
        cursor = ready.id
        task = await user.create(a, "from A")
        writes = [
            ("PATCH", f"/api/me/tasks/{task['id']}", {"title": "renamed on A"}),
            ("PATCH", f"/api/me/tasks/{task['id']}/complete", None),
            ("DELETE", f"/api/me/tasks/{task['id']}", None),
        ]
        seen = []
        for step in [None, *writes]:
            if step is not None:
                method, path, body = step
                response = await user.call(method, f"{a}{path}", json=body)
                assert response.status_code == 200, response.text
            (event,) = await reader.changes(1)
            # The event carries exactly what the feed says for the same interval.
            assert [event.json()] == await user.feed_since(a, cursor)
            assert event.id is not None
            cursor = event.id
            seen.append(event.json())
    assert [(c["op"], c["reason"]) for c in seen] == [
        ("upsert", "created"),
        ("upsert", "updated"),
        ("upsert", "updated"),
        ("delete", "deleted"),
    ]
    assert seen[1]["object"]["title"] == "renamed on A"
    assert seen[2]["object"]["completed"] is True
    assert seen[3]["object"] is None
    # Resuming from the last event delivers nothing older.
    assert await user.feed_since(a, cursor) == []


async def test_resume_by_last_event_id_after_a_disconnect_loses_nothing(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    first = await user.create(a, "before the drop")
    async with open_stream(http, f"{b}/api/me/events", user.headers) as reader:
        await _ready(reader)
        await user.call("PATCH", f"{a}/api/me/tasks/{first['id']}", json={"title": "seen"})
        (last,) = await reader.changes(1)
    assert last.id is not None
    # The connection is gone; meanwhile the user keeps writing elsewhere.
    second = await user.create(a, "while away")
    await user.call("PATCH", f"{a}/api/me/tasks/{first['id']}", json={"title": "changed away"})
    third = await user.create(a, "short-lived")
    await user.call("DELETE", f"{a}/api/me/tasks/{third['id']}")
    expected = await user.feed_since(a, last.id)
    resume = {**user.headers, "Last-Event-ID": last.id}
    async with open_stream(http, f"{b}/api/me/events", resume) as reader:
        events = await reader.changes(len(expected))
        assert [e.json() for e in events] == expected
        # Nothing before the cursor came back; the next event is a new write.
        fourth = await user.create(a, "after the resume")
        (after,) = await reader.changes(1)
    assert {(c["id"], c["op"]) for c in expected} == {
        (second["id"], "upsert"),
        (first["id"], "upsert"),
        (third["id"], "delete"),
    }
    assert after.json()["id"] == fourth["id"]


async def test_since_resumes_like_last_event_id_without_a_ready_event(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    cursor = (await user.call("GET", f"{a}/api/me/changes")).json()["next"]
    task = await user.create(a, "written before the stream")
    async with open_stream(http, f"{b}/api/events?since={cursor}", user.headers) as reader:
        first = await reader.next()
    assert first is not None
    assert first.event == "change"
    assert first.json()["id"] == task["id"]


async def test_an_expired_cursor_is_410_before_the_stream_starts(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    await user.create(a, "to be erased")
    cursor = (await user.call("GET", f"{a}/api/me/changes")).json()["next"]
    assert (await user.call("DELETE", f"{a}/api/me")).status_code == 204
    response = await user.call("GET", f"{b}/api/me/events", headers={"Last-Event-ID": cursor})
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "cursor_expired"


async def test_a_forged_cursor_is_422(instances: tuple[str, str], http: httpx.AsyncClient) -> None:
    _, b = instances
    user = Client(http)
    response = await user.call("GET", f"{b}/api/me/events", params={"since": "not-a-cursor"})
    assert response.status_code == 422
    assert response.json()["code"] == "cursor_invalid"


async def test_another_users_changes_never_arrive(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    alice, bob = Client(http), Client(http)
    async with open_stream(http, f"{b}/api/me/events", alice.headers) as reader:
        await _ready(reader)
        for n in range(3):
            await bob.create(a, f"bob's secret {n}")
        mine = await alice.create(a, "alice's own")
        (event,) = await reader.changes(1)
    assert event.json()["id"] == mine["id"]
    assert event.json()["object"]["user_id"] == alice.id


async def test_another_users_path_is_403(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    _, b = instances
    alice, bob = Client(http), Client(http)
    response = await alice.call("GET", f"{b}/api/{bob.id}/events")
    assert response.status_code == 403
    ticket = (await alice.call("POST", f"{b}/api/{bob.id}/events/tickets")).status_code
    assert ticket == 403


async def test_a_ticket_minted_on_one_instance_opens_one_stream_on_the_other(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    minted = await user.call("POST", f"{a}/api/me/events/tickets")
    assert minted.status_code == 201
    ticket = minted.json()["ticket"]
    assert minted.json()["expires_at"].endswith("Z")
    async with open_stream(http, f"{b}/api/events?ticket={ticket}") as reader:
        await _ready(reader)
        task = await user.create(a, "seen through a ticket")
        (event,) = await reader.changes(1)
        assert event.json()["id"] == task["id"]
        # Spent: neither instance accepts it again, even while its stream is open.
        for base in (a, b):
            again = await http.get(f"{base}/api/me/events", params={"ticket": ticket})
            assert again.status_code == 401
            assert again.json()["code"] == "ticket_used"


async def test_an_expired_ticket_is_refused(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    # A ticket never outlives the token that minted it.
    user = Client(http, ttl=1)
    minted = await user.call("POST", f"{a}/api/me/events/tickets")
    assert minted.status_code == 201
    await asyncio.sleep(2)  # past the ticket's (and the token's) expiry
    response = await http.get(f"{b}/api/me/events", params={"ticket": minted.json()["ticket"]})
    assert response.status_code == 401
    assert response.json()["code"] == "ticket_expired"


@pytest.mark.parametrize("name", ["ticket", "token", "access_token"])
async def test_a_jwt_in_the_url_is_never_accepted(
    instances: tuple[str, str], http: httpx.AsyncClient, name: str
) -> None:
    _, b = instances
    jwt = make_token(f"sse-{uuid.uuid4().hex[:8]}")
    response = await http.get(f"{b}/api/me/events", params={name: jwt})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_forged_ticket_is_refused(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    ticket = (await user.call("POST", f"{a}/api/me/events/tickets")).json()["ticket"]
    head, _, mac = ticket.partition(".")
    forged = head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + mac
    response = await http.get(f"{b}/api/me/events", params={"ticket": forged})
    assert response.status_code == 401
    assert response.json()["code"] == "ticket_invalid"


async def test_the_stream_ends_with_expired_when_its_token_expires(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    _, b = instances
    user = Client(http, ttl=2)
    async with open_stream(http, f"{b}/api/me/events", user.headers) as reader:
        await _ready(reader)
        final = await reader.next()
        end = await reader.next()
    assert final is not None
    assert final.event == "expired"
    assert end is None


async def test_a_ticket_is_only_read_on_the_stream_route(
    instances: tuple[str, str], http: httpx.AsyncClient
) -> None:
    a, b = instances
    user = Client(http)
    ticket = (await user.call("POST", f"{a}/api/me/events/tickets")).json()["ticket"]
    # Anywhere else a ticket is no credential at all, and it stays unspent.
    listed = await http.get(f"{b}/api/me/tasks", params={"ticket": ticket})
    assert listed.status_code == 401
    assert listed.json()["code"] == "token_missing"
    async with open_stream(http, f"{b}/api/me/events/?ticket={ticket}") as reader:
        await _ready(reader)
