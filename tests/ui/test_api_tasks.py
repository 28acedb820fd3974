"""JSON API: overview, registered tasks, executions, actions and dead letters — on every framework."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_until
from tests.ui.harness import Harness


async def submit(ui: Harness, name: str, *args: Any, **kwargs: Any) -> str:
    return await ui.run(ui.app.submit(name, *args, **kwargs))


async def finish(ui: Harness, task_id: str) -> Any:
    return await ui.run(ui.app.wait_for_result(task_id, timeout=10))


async def wait_status(ui: Harness, task_id: str, status: str) -> None:
    async def check() -> bool:
        record = await ui.run(ui.app.get_result(task_id))
        return record is not None and record.status.value == status

    await wait_until(check, timeout=10, message=f"task {task_id} to be {status}")


def assert_error(reply: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.text)
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == status and isinstance(body["error"], str) and body["error"]
    assert body["detail"] == body["error"], "FastAPI-style clients read 'detail'"
    if code is not None:
        assert body["code"] == code, body
    return body


async def test_stats_counts_tasks_by_status(ui: Harness) -> None:
    ok = await submit(ui, "ui.add", 1, 2)
    bad = await submit(ui, "ui.boom")
    await finish(ui, ok)
    await finish(ui, bad)
    reply = await ui.get("api/stats")
    assert reply.status == 200
    stats = reply.json()
    assert stats["tasks"]["success"] == 1 and stats["tasks"]["failed"] == 1
    assert stats["total"] == 2
    assert stats["dead_letters"] == 1
    assert stats["workers"] == 1
    assert stats["registered_tasks"] == 5
    assert stats["throughput"]["finished"] == 2 and stats["throughput"]["window_seconds"] == 60.0
    assert stats["scheduler"] is None


async def test_health_reports_each_store(ui: Harness) -> None:
    reply = await ui.get("api/health")
    assert reply.status == 200
    health = reply.json()
    assert health["status"] == "healthy"
    assert health["checks"]["broker"]["ok"] and health["checks"]["backend"]["ok"]
    assert health["checks"]["workers"]["count"] == 1
    assert health["checks"]["scheduler"] == {"configured": False, "running": False,
                                             "expected_here": False}


async def test_workers_lists_the_running_worker(ui: Harness) -> None:
    items = (await ui.get("api/workers")).json()["items"]
    assert len(items) == 1 and items[0]["id"] == ui.app.worker.worker_id
    assert {"hostname", "pid", "active", "processed", "last_seen"} <= set(items[0])


async def test_registered_tasks_and_task_info(ui: Harness) -> None:
    names = [t["name"] for t in (await ui.get("api/tasks")).json()]
    assert sorted(names) == sorted(["ui.add", "ui.boom", "ui.sleepy", "ui.flaky", "ui.gated"])
    info = (await ui.get("api/tasks/ui.flaky")).json()
    assert info["max_retries"] == 3 and info["retry_delay"] == 60.0 and info["cpu_bound"] is False
    assert "signature" in info
    assert_error(await ui.get("api/tasks/no.such.task"), 404, "not_found")


async def test_executions_filter_by_status_and_page(ui: Harness) -> None:
    ids = [await submit(ui, "ui.add", i, i) for i in range(5)]
    for task_id in ids:
        await finish(ui, task_id)
    failed = await submit(ui, "ui.boom")
    await finish(ui, failed)

    page = (await ui.get("api/executions?status=success&limit=2")).json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 0
    assert [i["status"] for i in page["items"]] == ["success", "success"]
    second = (await ui.get("api/executions?status=success&limit=2&offset=2")).json()
    third = (await ui.get("api/executions?status=success&limit=2&offset=4")).json()
    seen = [i["task_id"] for p in (page, second, third) for i in p["items"]]
    assert sorted(seen) == sorted(ids) and len(third["items"]) == 1
    assert seen[0] == ids[-1], "newest first"

    everything = (await ui.get("api/executions")).json()
    assert everything["total"] == 6 and everything["items"][0]["task_id"] == failed
    assert "dead_lettered" in everything["statuses"] and "retrying" in everything["statuses"]
    only_failed = (await ui.get("api/executions?status=failed")).json()
    assert [i["task_id"] for i in only_failed["items"]] == [failed]


async def test_executions_retrying_and_dead_lettered(ui: Harness) -> None:
    flaky = await submit(ui, "ui.flaky")
    await wait_status(ui, flaky, "retrying")
    dead = await submit(ui, "ui.boom", "gone")
    await finish(ui, dead)

    retrying = (await ui.get("api/executions?status=retrying")).json()
    assert [i["task_id"] for i in retrying["items"]] == [flaky]
    assert retrying["items"][0]["retries"] == 1 and retrying["items"][0]["next_retry_at"]
    lettered = (await ui.get("api/executions?status=dead_lettered")).json()
    assert lettered["total"] == 1
    item = lettered["items"][0]
    assert item["task_id"] == dead and item["dead_lettered"] is True
    assert item["dead_letter"]["error"] == "RuntimeError: gone"


async def test_search_by_id_prefix_and_by_name(ui: Harness) -> None:
    a = await submit(ui, "ui.add", 1, 1)
    b = await submit(ui, "ui.boom")
    await finish(ui, a)
    await finish(ui, b)
    exact = (await ui.get(f"api/executions?q={a}")).json()
    assert [i["task_id"] for i in exact["items"]] == [a] and exact["q"] == a
    by_prefix = (await ui.get(f"api/executions?q={a[:6]}")).json()
    assert a in [i["task_id"] for i in by_prefix["items"]]
    by_name = (await ui.get("api/executions?q=BOOM")).json()
    assert [i["task_id"] for i in by_name["items"]] == [b]
    filtered = (await ui.get("api/executions?q=ui.&status=success")).json()
    assert [i["task_id"] for i in filtered["items"]] == [a]
    dead = (await ui.get("api/executions?q=boom&status=dead_lettered")).json()
    assert [i["task_id"] for i in dead["items"]] == [b]
    assert (await ui.get("api/executions?q=zzzz-nothing")).json()["items"] == []


async def test_executions_reject_bad_parameters(ui: Harness) -> None:
    for query in ("status=bogus", "limit=abc", "limit=0", "limit=501", "offset=-1",
                  "offset=x", "limit=1e3"):
        body = assert_error(await ui.get(f"api/executions?{query}"), 400, "bad_request")
        assert query.split("=")[0] in body["error"], body
    assert "pending" in (await ui.get("api/executions?status=bogus")).json()["error"]


async def test_execution_detail_with_timeline(ui: Harness) -> None:
    task_id = await submit(ui, "ui.add", 20, 22)
    await finish(ui, task_id)
    detail = (await ui.get(f"api/executions/{task_id}")).json()
    assert detail["result"] == 42 and detail["args"] == [20, 22] and detail["status"] == "success"
    assert [s["status"] for s in detail["timeline"]] == ["pending", "running", "success"]
    assert detail["dead_letter"] is None

    failed = await submit(ui, "ui.boom", "with traceback")
    await finish(ui, failed)
    detail = (await ui.get(f"api/executions/{failed}")).json()
    assert "RuntimeError: with traceback" in detail["traceback"]
    assert detail["timeline"][-1]["status"] == "dead_lettered"
    assert_error(await ui.get("api/executions/does-not-exist"), 404, "not_found")


async def test_retry_failed_task(ui: Harness) -> None:
    failed = await submit(ui, "ui.boom")
    await finish(ui, failed)
    reply = await ui.post(f"api/executions/{failed}/retry")
    assert reply.status == 200 and reply.json() == {"task_id": failed, "status": "pending",
                                                     "retried": True}
    await finish(ui, failed)
    assert (await ui.get("api/stats")).json()["dead_letters"] == 1

    ok = await submit(ui, "ui.add", 1, 1)
    await finish(ui, ok)
    body = assert_error(await ui.post(f"api/executions/{ok}/retry"), 409, "conflict")
    assert "success" in body["error"]
    assert_error(await ui.post("api/executions/unknown-id/retry"), 404)


async def test_cancel_running_and_delayed_tasks(ui: Harness) -> None:
    running = await submit(ui, "ui.sleepy")
    await wait_status(ui, running, "running")
    reply = await ui.post(f"api/executions/{running}/cancel")
    assert reply.status == 200 and reply.json() == {"task_id": running, "cancelled": True}
    await wait_status(ui, running, "cancelled")

    delayed = await ui.run(ui.app.apply_async("ui.add", (1, 2), countdown=600))
    assert (await ui.post(f"api/executions/{delayed}/cancel")).status == 200
    assert (await ui.get(f"api/executions/{delayed}")).json()["status"] == "cancelled"

    assert_error(await ui.post(f"api/executions/{delayed}/cancel"), 409, "conflict")
    assert_error(await ui.post("api/executions/nope/cancel"), 404)


async def test_dead_letters_list_retry_purge(ui: Harness) -> None:
    first = await submit(ui, "ui.boom", "one")
    await finish(ui, first)
    second = await submit(ui, "ui.boom", "two")
    await finish(ui, second)
    third = await submit(ui, "ui.boom", "three")
    await finish(ui, third)

    listing = (await ui.get("api/dead-letters?limit=2")).json()
    assert listing["total"] == 3 and [d["task_id"] for d in listing["items"]] == [third, second]
    assert listing["items"][0]["error"] == "RuntimeError: three"
    assert listing["items"][0]["payload"]["args"] == ["three"]

    retried = await ui.post(f"api/dead-letters/{first}/retry")
    assert retried.status == 200 and retried.json()["task_id"] == first
    await finish(ui, first)  # fails again: boom always raises
    assert_error(await ui.post("api/dead-letters/unknown/retry"), 404)

    purged = await ui.delete(f"api/dead-letters/{second}")
    assert purged.status == 200 and purged.json() == {"purged": 1}
    assert_error(await ui.delete(f"api/dead-letters/{second}"), 404)
    everything = await ui.delete("api/dead-letters")
    assert everything.status == 200 and everything.json() == {"purged": 2}
    assert (await ui.get("api/dead-letters")).json()["items"] == []
    assert_error(await ui.get("api/dead-letters?limit=-5"), 400)


async def test_wrong_method_and_unknown_endpoint(ui: Harness) -> None:
    reply = await ui.post("api/stats")
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "GET"
    assert_error(await ui.get("api/no-such-thing"), 404)
    assert_error(await ui.get("api/executions/x/retry"), 405)
