"""The change feed: tombstones and reasons, cursors bound to the user, 410 for history
no longer kept (or an erased account), no change skipped under concurrent writers, and a
replica built only from the feed that always equals the server's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import User
from tests.dates import day
from tests.routes.support import assert_problem, create, create_list, listing


async def cursor(user: User) -> str:
    response = await user.get("/api/me/changes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changes"] == [] and body["has_more"] is False
    token: str = body["next"]
    return token


async def changes_since(user: User, since: str) -> tuple[list[dict[str, Any]], str]:
    """Every change after `since` (following `has_more`), and the cursor after them."""
    collected: list[dict[str, Any]] = []
    while True:
        response = await user.get("/api/me/changes", params={"since": since, "limit": 7})
        assert response.status_code == 200, response.text
        body = response.json()
        collected += body["changes"]
        since = body["next"]
        if not body["has_more"]:
            return collected, since


def summary(changes: list[dict[str, Any]]) -> list[tuple[str, int, str, str]]:
    return [(c["kind"], c["id"], c["op"], c["reason"]) for c in changes]


async def test_creates_updates_completions_and_deletes_appear(alice: User) -> None:
    start = await cursor(alice)
    kept = await create(alice, "kept")
    gone = await create(alice, "gone")
    await alice.patch(f"/api/me/tasks/{kept['id']}/complete")
    await alice.delete(f"/api/me/tasks/{gone['id']}")
    changes, _ = await changes_since(alice, start)
    assert summary(changes) == [
        ("task", kept["id"], "upsert", "updated"),
        ("task", gone["id"], "delete", "deleted"),
    ]
    assert changes[0]["object"]["completed"] is True
    assert changes[0]["version"] == 2
    assert changes[1]["object"] is None


async def test_the_next_cursor_only_returns_later_changes(alice: User) -> None:
    start = await cursor(alice)
    first = await create(alice)
    _, after_first = await changes_since(alice, start)
    second = await create(alice)
    changes, _ = await changes_since(alice, after_first)
    assert [c["id"] for c in changes] == [second["id"]]
    assert first["id"] != second["id"]


async def test_deleting_a_list_with_its_tasks_reports_why(alice: User) -> None:
    garden = await create_list(alice)
    parent = await create(alice, list_id=garden["id"])
    child = await create(alice, parent_id=parent["id"])
    start = await cursor(alice)
    response = await alice.delete(f"/api/me/lists/{garden['id']}", params={"tasks": "delete"})
    assert response.status_code == 200
    changes, _ = await changes_since(alice, start)
    assert set(summary(changes)) == {
        ("task", parent["id"], "delete", "list_deleted"),
        ("task", child["id"], "delete", "list_deleted"),
        ("list", garden["id"], "delete", "deleted"),
    }


async def test_subtasks_deleted_with_their_parent_say_so(alice: User) -> None:
    parent = await create(alice)
    child = await create(alice, parent_id=parent["id"])
    start = await cursor(alice)
    await alice.delete(f"/api/me/tasks/{parent['id']}")
    changes, _ = await changes_since(alice, start)
    assert set(summary(changes)) == {
        ("task", parent["id"], "delete", "deleted"),
        ("task", child["id"], "delete", "parent_deleted"),
    }


async def test_recurrence_and_tag_merges_are_recorded(alice: User) -> None:
    task = await create(alice, due_date=day(1), recurrence="FREQ=DAILY", tags=["a"])
    await create(alice, tags=["b"])
    start = await cursor(alice)
    done = (await alice.patch(f"/api/me/tasks/{task['id']}/complete")).json()
    changes, after = await changes_since(alice, start)
    assert ("task", done["next_occurrence_id"], "upsert", "recurrence") in summary(changes)
    tags = {t["name"]: t for t in (await alice.get("/api/me/tags")).json()}
    await alice.patch(f"/api/me/tags/{tags['a']['id']}", json={"name": "B"})
    changes, _ = await changes_since(alice, after)
    found = summary(changes)
    assert ("tag", tags["a"]["id"], "delete", "merged") in found
    assert ("tag", tags["b"]["id"], "upsert", "updated") in found
    occurrences = [c for c in changes if c["kind"] == "task"]
    assert all(c["object"]["tags"] == ["B"] for c in occurrences)


async def test_a_cursor_belongs_to_its_user(alice: User, bob: User) -> None:
    mine = await cursor(alice)
    response = await bob.get("/api/me/changes", params={"since": mine})
    assert_problem(response, 422, "cursor_invalid")


async def test_a_cursor_older_than_the_kept_history_is_410(
    alice: User, owner_conn: asyncpg.Connection
) -> None:
    await create(alice)
    start = await cursor(alice)
    await create(alice)
    later = await cursor(alice)
    async with owner_conn.transaction():
        await owner_conn.execute("SELECT set_config('app.user_id', $1, true)", alice.id)
        await owner_conn.execute("UPDATE changes SET changed_at = now() - interval '31 days'")
    assert_problem(
        await alice.get("/api/me/changes", params={"since": start}), 410, "cursor_expired"
    )
    # Nothing after `later` was lost: it still works, and purges the expired entries.
    assert (await alice.get("/api/me/changes", params={"since": later})).status_code == 200
    assert_problem(
        await alice.get("/api/me/changes", params={"since": start}), 410, "cursor_expired"
    )


async def test_after_an_erase_an_old_cursor_is_410(alice: User) -> None:
    await create(alice)
    start = await cursor(alice)
    assert (await alice.delete("/api/me")).status_code == 204
    await create(alice)
    assert_problem(
        await alice.get("/api/me/changes", params={"since": start}), 410, "cursor_expired"
    )


async def test_a_cursor_from_before_the_first_write_follows_the_account(alice: User) -> None:
    start = await cursor(alice)
    task = await create(alice)
    changes, _ = await changes_since(alice, start)
    assert summary(changes) == [("task", task["id"], "upsert", "created")]


async def test_concurrent_writers_never_make_a_reader_skip_a_change(alice: User) -> None:
    # Writers commit in an order of their own; a reader polling all along must still
    # see every task by the end.
    await create(alice)
    since = await cursor(alice)
    seen: set[int] = set()
    writing = True

    async def reader() -> None:
        nonlocal since
        while writing:
            changes, since = await changes_since(alice, since)
            seen.update(c["id"] for c in changes)
            await asyncio.sleep(0)

    polling = asyncio.create_task(reader())
    created = await asyncio.gather(*(create(alice, f"w{n}") for n in range(30)))
    writing = False
    await polling
    changes, _ = await changes_since(alice, since)
    seen.update(c["id"] for c in changes)
    assert {t["id"] for t in created} <= seen


# --- property: a replica fed only by the change feed equals the server -----------------


class Replica:
    """A client's offline copy, built from the feed alone."""

    def __init__(self, user: User, since: str) -> None:
        self.user = user
        self.since = since
        self.objects: dict[str, dict[int, dict[str, Any]]] = {"task": {}, "list": {}, "tag": {}}

    async def sync(self) -> None:
        changes, self.since = await changes_since(self.user, self.since)
        for change in changes:
            store = self.objects[change["kind"]]
            if change["op"] == "delete":
                store.pop(change["id"], None)
            else:
                store[change["id"]] = change["object"]


def _without_counts(tags: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    # `task_count` is derived from the tasks (the client computes it from its replica).
    return {t["id"]: {k: v for k, v in t.items() if k != "task_count"} for t in tags}


async def server_state(user: User) -> dict[str, dict[int, dict[str, Any]]]:
    return {
        "task": {t["id"]: t for t in await listing(user)},
        "list": {x["id"]: x for x in (await user.get("/api/me/lists")).json()},
        "tag": _without_counts((await user.get("/api/me/tags")).json()),
    }


OPERATION = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["a", "b", None]), st.booleans()),
    st.tuples(st.just("update"), st.integers(0, 9), st.sampled_from(["a", "c", None])),
    st.tuples(st.just("complete"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("move"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("batch"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("delete"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("list"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("rename_tag"), st.integers(0, 9), st.sampled_from(["a", "B", "d"])),
)


async def _step(device: User, op: tuple[Any, ...], state: dict[str, Any]) -> None:
    """Apply one operation; stale versions (the other device wrote meanwhile) are 412."""
    kind, x, y = op
    tasks = sorted(state["task"].values(), key=lambda t: t["id"])
    task = tasks[x % len(tasks)] if tasks and isinstance(x, int) else None
    if_match = {"If-Match": f'"{task["version"]}"'} if task and y else {}
    lists = sorted(state["list"])
    if kind == "create":
        fields: dict[str, Any] = {"tags": [x]} if x else {}
        if y and lists:
            fields["list_id"] = lists[0]
        if not y and tasks and tasks[0]["parent_id"] is None:
            fields["parent_id"] = tasks[0]["id"]
        if y:
            fields.update(due_date=day(1), recurrence="FREQ=WEEKLY")
        response = await device.post("/api/me/tasks", json={"title": "t", **fields})
    elif task is None:
        return
    elif kind == "update":
        body = {"title": f"u{x}", "tags": [y] if y else []}
        if y == "c":  # as if the other device had written since this one last synced
            if_match = {"If-Match": f'"{task["version"] - 1}"'}
        response = await device.patch(f"/api/me/tasks/{task['id']}", json=body, headers=if_match)
    elif kind == "complete":
        response = await device.patch(f"/api/me/tasks/{task['id']}/complete", headers=if_match)
    elif kind == "move":
        anchor = tasks[y % len(tasks)]
        body = {"after": anchor["id"]} if anchor["id"] != task["id"] else {}
        response = await device.post(f"/api/me/tasks/{task['id']}/move", json=body)
    elif kind == "batch":
        other = tasks[y % len(tasks)]
        operations = [
            {"op": "create", "data": {"title": "batched"}},
            {"op": "complete", "id": other["id"], "if_version": other["version"]},
            {"op": "update", "id": task["id"], "data": {"priority": "high"}},
        ]
        response = await device.post("/api/me/tasks/batch", json={"operations": operations})
    elif kind == "delete":
        response = await device.delete(f"/api/me/tasks/{task['id']}", headers=if_match)
    elif kind == "list":
        if lists and y:
            response = await device.delete(
                f"/api/me/lists/{lists[x % len(lists)]}", params={"tasks": "delete"}
            )
        else:
            response = await device.post("/api/me/lists", json={"name": f"l{x}"})
    else:
        tags = sorted(state["tag"])
        if not tags:
            return
        url = f"/api/me/tags/{tags[x % len(tags)]}"
        response = await device.patch(url, json={"name": y})
    assert response.status_code < 300 or response.status_code in (404, 409, 412, 422), (
        op,
        response.text,
    )


async def _run(alice: User, phone: User, bob: User, ops: list[tuple[Any, ...]]) -> None:
    await create(alice, "seed", tags=["a"])
    await create(alice, "seed", due_date=day(1), recurrence="FREQ=DAILY")
    await create_list(alice)
    bob_since = await cursor(bob)
    replicas = [Replica(alice, await cursor(alice)), Replica(phone, await cursor(phone))]
    for replica in replicas:
        # The recipe: take a cursor, then list everything once, then follow the feed.
        replica.objects = await server_state(replica.user)
    for n, op in enumerate(ops):
        device = replicas[n % 2]
        # A device acts on what its replica knows: stale versions are realistic.
        await _step(device.user, op, device.objects)
        truth = await server_state(alice)
        for replica in replicas:
            await replica.sync()
            mirrored = {
                **replica.objects,
                "tag": _without_counts(list(replica.objects["tag"].values())),
            }
            assert mirrored == truth, (n, op)
    changes, _ = await changes_since(bob, bob_since)
    assert changes == []


async def test_a_replica_built_from_the_feed_equals_the_server(
    new_user: Callable[..., User],
) -> None:
    loop = asyncio.get_running_loop()

    def run(coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=300)

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=st.lists(OPERATION, min_size=3, max_size=12))
    def check(ops: list[tuple[Any, ...]]) -> None:
        alice = new_user()
        # The phone is the same account with its own token (and its own replica).
        phone = User(alice.http, alice.id)
        run(_run(alice, phone, new_user(), ops))

    await asyncio.to_thread(check)
