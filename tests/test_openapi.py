"""The OpenAPI schema documents every operation, its errors and the bearer scheme."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from todo_api.http.problems import STATUS_TITLES


@pytest.fixture(scope="module")
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()
    ]


async def test_only_canonical_spellings_are_documented(schema: dict[str, Any]) -> None:
    api_paths = [p for p in schema["paths"] if p.startswith("/api")]
    assert api_paths
    assert all(p.startswith("/api/{user_id}") for p in api_paths)


async def test_every_operation_has_a_summary_and_description(schema: dict[str, Any]) -> None:
    for path, method, op in _operations(schema):
        assert op.get("summary"), f"{method} {path} has no summary"
        assert op.get("description"), f"{method} {path} has no description"


async def test_api_operations_declare_bearer_auth_and_401(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method, op in _operations(schema):
        if path.startswith("/api"):
            assert op["security"] == [{"bearerAuth": []}]
            assert "401" in op["responses"], f"{method} {path} does not document 401"


async def test_errors_are_documented_as_problem_json(schema: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, method, op in _operations(schema):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"], (
                    f"{method} {path} {status}"
                )
                ref = response["content"]["application/problem+json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Problem"


async def test_problem_schema_has_the_rfc_9457_members(schema: dict[str, Any]) -> None:
    properties = schema["components"]["schemas"]["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "code", "request_id", "errors"} <= set(properties)


async def test_every_documented_response_has_our_own_description(app: FastAPI) -> None:
    # Without one, FastAPI takes the status's phrase from Python's `http.client`, whose
    # words for 413 and 422 changed in 3.13: openapi.json would depend on the Python.
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for status, response in route.responses.items():
                if str(status) != str(route.status_code or 200):
                    assert response.get("description"), f"{route.path} {status}"


async def test_error_descriptions_are_rfc_9110_names(schema: dict[str, Any]) -> None:
    for path, method, op in _operations(schema):
        for status, response in op["responses"].items():
            if status in {"413", "422"} and response["description"] != "Validation Error":
                assert response["description"] == STATUS_TITLES[int(status)], (
                    f"{method} {path} {status}"
                )
    assert STATUS_TITLES[413] == "Content Too Large"
    assert STATUS_TITLES[422] == "Unprocessable Content"
