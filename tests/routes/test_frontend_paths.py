"""Paths as public frontends send them: trailing slashes served directly, and no URL the
API builds depends on the request's Host or scheme."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import User
from tests.routes.support import create

SPELLINGS = ["/api/{user}/tasks", "/api/me/tasks", "/api/tasks"]


@pytest.mark.parametrize("base", SPELLINGS)
async def test_trailing_slashes_are_served_without_a_redirect(alice: User, base: str) -> None:
    url = base.format(user=alice.id)
    created = await alice.post(f"{url}/", json={"title": "Slash"})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    listed = await alice.get(f"{url}/")
    assert listed.status_code == 200
    assert [task["id"] for task in listed.json()] == [task_id]
    one = await alice.get(f"{url}/{task_id}/")
    assert (one.status_code, one.json()["id"]) == (200, task_id)
    put = await alice.put(f"{url}/{task_id}/", json={"title": "Put"})
    assert (put.status_code, put.json()["title"]) == (200, "Put")
    toggled = await alice.patch(f"{url}/{task_id}/complete/")
    assert (toggled.status_code, toggled.json()["completed"]) == (200, True)
    deleted = await alice.delete(f"{url}/{task_id}/")
    assert deleted.status_code == 200
    assert (await alice.get(f"{url}/{task_id}")).status_code == 404


async def test_the_profile_takes_a_trailing_slash_too(alice: User) -> None:
    response = await alice.get("/api/me/")
    assert response.status_code == 200
    assert response.json()["user_id"] == alice.id


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8443"])
async def test_location_and_link_never_reflect_the_host(alice: User, host: str) -> None:
    for _ in range(2):
        await create(alice)
    headers = {"Host": host, "X-Forwarded-Host": host, "X-Forwarded-Proto": "https"}
    created = await alice.post("/api/me/tasks", json={"title": "t"}, headers=headers)
    listed = await alice.get("/api/me/tasks", params={"limit": 1}, headers=headers)
    location, link = created.headers["location"], listed.headers["link"]
    assert location == f"/api/me/tasks/{created.json()['id']}"
    assert link.startswith("</api/me/tasks?") and "evil" not in link
    # A relative reference resolves against the URL the client used, as RFC 9110 says.
    resolved = httpx.URL("https://api.example.com/api/me/tasks").join(location)
    assert str(resolved) == f"https://api.example.com{location}"


async def test_the_short_spelling_gets_short_urls_back(alice: User) -> None:
    for _ in range(2):
        await create(alice)
    created = await alice.post("/api/tasks", json={"title": "t"})
    listed = await alice.get("/api/tasks/", params={"limit": 1})
    assert created.headers["location"] == f"/api/tasks/{created.json()['id']}"
    assert listed.headers["link"].startswith("</api/tasks?limit=1&cursor=")
