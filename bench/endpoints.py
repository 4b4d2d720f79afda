"""What the benchmark sends: each endpoint, on each spelling of its URL.

`bench/wrk/todo.lua` fills in the same templates for every request; `run.py` and
`tests/test_bench_floor.py` use them from Python.

Placeholders: `{user}` the token's user id, `{id}` one of that user's tasks, `{tag}` one
of that user's tags (the one on most of its tasks), `{n}` a request counter.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every spelling of a task URL a client may send.
SPELLINGS = {
    "canonical": "/api/{user}",
    "me": "/api/me",
    "short": "/api",
}
#: The text search's term: a word in about 2% of the seeded titles.
SEARCH_TERM = "milk"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    #: The path after the spelling's prefix, with its query string.
    path: str
    body: str = ""
    #: Sends `If-Match` with the task's current version (`run.py` reads the versions
    #: before each run and the wrk script counts them up as it goes).
    if_match: bool = False

    @property
    def write(self) -> bool:
        return self.method != "GET"

    def label(self, spelling: str) -> str:
        """`GET /api/me/tasks?limit=20`, and so on."""
        extra = " + If-Match" if self.if_match else ""
        return f"{self.method} {SPELLINGS[spelling]}{self.path}{extra}"

    def url(self, spelling: str, *, user: str, task_id: int | str = "", tag: str = "") -> str:
        template = SPELLINGS[spelling] + self.path
        return template.format(user=user, id=task_id, tag=tag)

    def payload(self, n: int = 1) -> bytes | None:
        return self.body.replace("{n}", str(n)).encode() if self.body else None


ENDPOINTS = {
    endpoint.name: endpoint
    for endpoint in (
        Endpoint("list", "GET", "/tasks?limit=20"),
        Endpoint("list_tag", "GET", "/tasks?tag={tag}&limit=20"),
        Endpoint("list_q", "GET", f"/tasks?q={SEARCH_TERM}&limit=20"),
        Endpoint("get", "GET", "/tasks/{id}"),
        Endpoint("patch", "PATCH", "/tasks/{id}", '{"title":"Renamed by the load test {n}"}'),
        Endpoint(
            "patch_if_match",
            "PATCH",
            "/tasks/{id}",
            '{"title":"Renamed under If-Match {n}"}',
            if_match=True,
        ),
        Endpoint("complete", "PATCH", "/tasks/{id}/complete"),
        Endpoint(
            "create",
            "POST",
            "/tasks",
            '{"title":"Load test task {n}","description":"Created by bench/run.py."}',
        ),
    )
}
