"""FlowrraManager (SPEC section 2): the data behind the dashboard, on the in-memory default."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta

import pytest

from flowrra import Flowrra, TaskNotFoundError, TaskResult, TaskStatus
from tests.conftest import wait_until

if importlib.util.find_spec("flowrra.management") is None:
    pytest.skip("flowrra.management is not written yet (another helper owns it)",
                allow_module_level=True)

from flowrra.management import FlowrraManager, SchedulerNotConfiguredError


async def _app_with_history(make_app, gate) -> tuple[Flowrra, dict[str, str]]:
    app = await make_app(io_workers=1)

    @app.task(name="mgmt.ok")
    async def ok(n: int) -> int:
        """Return n (the docstring shows in task info)."""
        return n

    @app.task(name="mgmt.bad", max_retries=0)
    async def bad() -> None:
        raise RuntimeError("broken")

    @app.task(name="mgmt.hold")
    async def hold() -> None:
        await gate.hold()

    ids = {"ok": await app.submit(ok, 1), "bad": await app.submit(bad)}
    for task_id in ids.values():
        await app.wait_for_result(task_id, timeout=5)
    ids["running"] = await app.submit(hold)
    await wait_until(lambda: gate.active == 1, message="running task")
    ids["pending"] = await app.submit(ok, 2)
    return app, ids


async def test_listings_and_results(make_app, gate) -> None:
    app, ids = await _app_with_history(make_app, gate)
    manager = FlowrraManager(app)
    assert [t["task_id"] for t in await manager.list_completed_tasks()] == [ids["ok"]]
    assert [t["task_id"] for t in await manager.list_failed_tasks()] == [ids["bad"]]
    assert [t["task_id"] for t in await manager.list_running_tasks()] == [ids["running"]]
    assert [t["task_id"] for t in await manager.list_pending_tasks(limit=5)] == [ids["pending"]]
    result = await manager.get_task_result(ids["bad"])
    assert result["status"] == "failed" and result["error"] == "RuntimeError: broken"
    assert await manager.get_task_result("unknown") is None
    json.dumps(await manager.list_completed_tasks())
    gate.open.set()


async def test_registered_tasks(make_app, gate) -> None:
    app, _ = await _app_with_history(make_app, gate)
    manager = FlowrraManager(app)
    names = [t["name"] for t in await manager.list_registered_tasks()]
    assert sorted(names) == ["mgmt.bad", "mgmt.hold", "mgmt.ok"]
    info = await manager.get_task_info("mgmt.ok")
    assert info["name"] == "mgmt.ok" and "docstring" in info["doc"]
    assert await manager.get_task_info("nope") is None
    gate.open.set()


async def test_stats_and_health(make_app, gate) -> None:
    app, _ = await _app_with_history(make_app, gate)
    manager = FlowrraManager(app)
    stats = await manager.get_stats()
    json.dumps(stats)
    assert stats["tasks"]["success"] == 1 and stats["tasks"]["failed"] == 1
    assert stats["tasks"]["running"] == 1 and stats["tasks"]["pending"] == 1
    assert stats["dead_letters"] == 1 and stats["workers"] == 1
    health = await manager.health_check()
    assert health["status"] == "healthy"
    gate.open.set()
    await app.stop()
    assert (await FlowrraManager(app).health_check())["status"] != "healthy"


async def test_schedules(make_app) -> None:
    app = await make_app()

    @app.task(name="mgmt.tick")
    async def tick() -> None: ...

    manager = FlowrraManager(app)
    with pytest.raises(SchedulerNotConfiguredError, match="create_scheduler"):
        await manager.list_schedules()
    app.create_scheduler("memory://")
    cron_id = await manager.create_schedule_cron("mgmt.tick", "*/5 * * * *", description="five")
    every_id = await manager.create_schedule_interval("mgmt.tick", 30, enabled=False)
    assert await manager.create_schedule_cron("mgmt.tick", "*/5 * * * *",
                                              description="five") == cron_id
    assert {s["id"] for s in await manager.list_schedules()} == {cron_id, every_id}
    assert [s["id"] for s in await manager.list_schedules(enabled_only=True)] == [cron_id]
    assert (await manager.get_schedule(cron_id))["description"] == "five"
    assert await manager.get_schedule("missing") is None
    assert await manager.enable_schedule(every_id) is True
    assert await manager.disable_schedule(cron_id) is True
    assert [s["id"] for s in await manager.list_schedules(enabled_only=True)] == [every_id]
    assert await manager.delete_schedule(cron_id) is True
    assert await manager.delete_schedule(cron_id) is False
    assert isinstance(await manager.get_scheduler_stats(), dict)
    with pytest.raises(TaskNotFoundError):
        await manager.create_schedule_cron("not.registered", "* * * * *")
    with pytest.raises(ValueError):
        await manager.create_schedule_interval("mgmt.tick", 0)


async def test_throughput_buckets_place_each_finish_by_its_age(make_app) -> None:
    """The dashboard draws its chart from these counts, oldest bucket first."""
    app = await make_app(start=False)
    await app.connect()
    now = datetime.now(UTC)
    ages = [0.5, 1.0, 3.0, 10.0, 59.0, 61.0, 600.0]  # the last two are outside the window
    for index, age in reversed(list(enumerate(ages))):  # stored as they finished
        status = TaskStatus.FAILED if index == 1 else TaskStatus.SUCCESS
        finished = now - timedelta(seconds=age)
        await app.backend.store(TaskResult(f"t{index}", status, "job", finished_at=finished,
                                           submitted_at=finished))
    throughput = await FlowrraManager(app).get_throughput()
    assert (throughput["finished"], throughput["succeeded"], throughput["failed"]) == (5, 4, 1)
    buckets = throughput["buckets"]
    assert buckets["seconds"] == 2.0 and len(buckets["counts"]) == 30
    expected = [0] * 30
    for age in (0.5, 1.0, 3.0, 10.0, 59.0):
        expected[29 - int(age // 2)] += 1
    assert buckets["counts"] == expected
