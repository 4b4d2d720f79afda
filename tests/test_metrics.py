"""Prometheus metrics reflect requests, the pool, the circuit breaker and JWKS."""

from __future__ import annotations

import httpx

from tests.conftest import User


def _value(text: str, name: str, default: float | None = None, **labels: str) -> float:
    """The sample of `name` whose labels include `labels` (exactly one is expected)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        metric_name, _, metric_labels = metric.partition("{")
        if metric_name == name and all(f'{k}="{v}"' in metric_labels for k, v in labels.items()):
            return float(value)
    if default is not None:
        return default
    raise AssertionError(f"{name} {labels} not in metrics")


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, alice: User
) -> None:
    task = await alice.create_task("counted")
    labels = {"method": "GET", "route": "/api/{user_id}/tasks/{task_id}", "status": "200"}
    before = _value((await client.get("/metrics")).text, "todo_api_requests_total", 0.0, **labels)
    await alice.get(f"/api/{alice.id}/tasks/{task['id']}")
    text = (await client.get("/metrics")).text
    assert _value(text, "todo_api_requests_total", **labels) == before + 1
    assert alice.id not in text  # templates only, never raw paths
    assert "todo_api_request_duration_seconds_bucket" in text


async def test_live_state_is_exported(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert _value(text, "todo_api_db_circuit_open") == 0
    assert _value(text, "todo_api_db_pool_in_use") >= 0
    assert _value(text, "todo_api_db_pool_waiting") == 0
    assert _value(text, "todo_api_jwks_refreshes_total") == 0


async def test_metrics_need_no_token_and_stay_out_of_the_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
