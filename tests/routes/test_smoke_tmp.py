async def test_create_and_list(alice):
    task = await alice.create_task("Buy milk")
    r = await alice.get("/api/me/tasks")
    assert r.status_code == 200, r.text
    assert [t["id"] for t in r.json()] == [task["id"]]
    print(task)
