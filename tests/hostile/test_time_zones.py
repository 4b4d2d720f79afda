"""A profile may only name a zone both Python and the connected PostgreSQL know, and
never one that is no place (`localtime` is each host's own zone)."""

from __future__ import annotations

import zoneinfo

import asyncpg
import pytest
from fastapi import FastAPI

from tests.conftest import User
from tests.dates import day
from tests.routes.support import assert_problem


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory"])
async def test_zones_that_are_no_place_are_422(alice: User, zone: str) -> None:
    assert (await alice.patch("/api/me", json={"timezone": "Europe/Paris"})).status_code == 200
    response = await alice.patch("/api/me", json={"timezone": zone})
    body = assert_problem(response, 422, "timezone_unsupported")
    assert body["errors"][0]["loc"] == ["body", "timezone"]
    assert (await alice.get("/api/me")).json()["timezone"] == "Europe/Paris"
    # The profile still works for everything that reads its zone.
    created = await alice.post("/api/me/tasks", json={"title": "t", "due_date": day(1)})
    assert created.status_code == 201, created.text
    listed = await alice.get("/api/me/tasks", params={"due_before": day(2)})
    assert listed.status_code == 200, listed.text


async def test_every_zone_offered_is_known_to_both_sides(
    app: FastAPI, owner_conn: asyncpg.Connection
) -> None:
    server = {row["name"] for row in await owner_conn.fetch("SELECT name FROM pg_timezone_names")}
    offered = app.state.database.time_zones
    assert "Europe/Paris" in offered
    assert "localtime" not in offered
    assert offered <= server & zoneinfo.available_timezones()
