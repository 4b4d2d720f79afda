"""Prometheus metrics: request counts and latency by route template, database pool,
circuit breaker and JWKS state. Each app has its own registry (several apps can share
a process in tests); with `--workers N`, each worker reports its own numbers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

router = APIRouter(tags=["operations"], include_in_schema=False)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The metrics of one application instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "todo_api_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "todo_api_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.app_state: Any = None
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.registry.register(_LiveState(self))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # `labels()` takes a lock and builds a key per call; the children of the few
        # label combinations a deployment sees are kept here instead (routes are
        # templates and statuses a short list, so this stays small).
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class _LiveState(Collector):
    """Values read at scrape time from the running app's objects."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        state = self.metrics.app_state
        database = getattr(state, "database", None)
        if database is not None:
            yield GaugeMetricFamily(
                "todo_api_db_pool_in_use",
                "Connections checked out of the pool by requests.",
                value=float(database.in_use),
            )
            yield GaugeMetricFamily(
                "todo_api_db_pool_waiting",
                "Requests waiting to get a connection and start their transaction.",
                value=float(database.waiting),
            )
            yield GaugeMetricFamily(
                "todo_api_db_circuit_open",
                "1 while the database circuit breaker is open (requests get 503).",
                value=1.0 if database.breaker.is_open else 0.0,
            )
            yield CounterMetricFamily(
                "todo_api_db_circuit_trips",
                "Times the circuit opened after a connection failure.",
                value=float(database.breaker.trips),
            )
        verifier = getattr(state, "verifier", None)
        if verifier is not None:
            yield CounterMetricFamily(
                "todo_api_jwks_refreshes",
                "JWKS fetches made to refresh signing keys.",
                value=float(verifier.jwks_refresh_count),
            )
        limiter = getattr(state, "rate_limiter", None)
        if limiter is not None and hasattr(limiter, "degraded"):
            yield GaugeMetricFamily(
                "todo_api_rate_limiter_degraded",
                "1 while the shared rate-limit store is unreachable (requests pass).",
                value=1.0 if limiter.degraded else 0.0,
            )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Metrics in the Prometheus text format, for the operator's scraper."""
    collected: Metrics = request.app.state.metrics
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
