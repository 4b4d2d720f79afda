"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from todo_api.db.database import Database
from todo_api.errors import ServiceUnavailable
from todo_api.http.problems import error_responses

router = APIRouter(tags=["health"])

#: Seconds a readiness answer is reused, so frequent checks do not keep a
#: serverless database awake or queue behind real traffic.
READY_CACHE_SECONDS = 5.0


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]
    isolation: Literal["enforced", "not_enforced"]
    jwks: Literal["ok", "not_configured"]


class ReadinessProbe:
    """Remembers the last database check for a few seconds; one probe at a time."""

    def __init__(self, database: Database, ttl: float = READY_CACHE_SECONDS) -> None:
        self.database = database
        self.ttl = ttl
        self._checked_at = float("-inf")
        self._ok = False
        self._lock = asyncio.Lock()

    async def ready(self) -> bool:
        if self.database.breaker.is_open:
            return False
        if time.monotonic() - self._checked_at < self.ttl:
            return self._ok
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.ttl:
                self._ok = await self._probe()
                self._checked_at = time.monotonic()
        return self._ok

    async def _probe(self) -> bool:
        try:
            await asyncio.wait_for(self._select_one(), timeout=3)
        except Exception:
            return False
        return True

    async def _select_one(self) -> None:
        await self.database.ping()
        if not self.database.inspected:
            await self.database.ensure_inspected()


# HEAD as well (load balancers probe with it), out of the schema: the GET documents it.
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="Liveness", response_model=Health)
async def healthz() -> Health:
    """The process is up. Does not touch the database. Also answers `HEAD`."""
    return Health(status="ok")


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz", summary="Readiness", response_model=Readiness, responses=error_responses(503)
)
async def readyz(request: Request) -> Readiness:
    """Ready to serve: the database answers (checked at most every few seconds) and, when
    a JWKS source is configured, signing keys have been loaded. 503 otherwise. Also
    answers `HEAD`."""
    probe: ReadinessProbe = request.app.state.readiness
    if not await probe.ready():
        raise ServiceUnavailable(
            "The database is not answering.",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )
    jwks = request.app.state.verifier.jwks_status
    if jwks == "unavailable":
        raise ServiceUnavailable(
            "No signing keys could be loaded from the JWKS endpoint.",
            code="jwks_unavailable",
            headers={"Retry-After": "5"},
        )
    enforced = probe.database.isolation_enforced
    return Readiness(
        status="ok",
        database="ok",
        isolation="enforced" if enforced else "not_enforced",
        jwks=jwks,
    )
