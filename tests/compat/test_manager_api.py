"""FlowrraManager and the dashboard JSON API keep the keys and meanings flowrra 0.1.8 returned.

Each test states one 0.1.8 behaviour (from its MANAGEMENT_API.md / UI.md and the
results 0.1.8 gave for them) and checks it on our in-memory app, next to our own
keys. The JSON API tests run on every web framework through the tests/ui harness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from flowrra import (
    BrokerConfig,
    Config,
    ExecutorConfig,
    Flowrra,
    SchedulerConfig,
    TaskStatus,
)
from flowrra.management import FlowrraManager, SchedulerNotConfiguredError
from tests.ui import conftest as _ui_fixtures
from tests.ui.harness import Harness, forget

# The tests/ui fixtures (``ui``/``sched_ui`` run a test on every web framework), reused here.
framework = _ui_fixtures.framework
make_ui = _ui_fixtures.make_ui
ui = _ui_fixtures.ui
sched_ui = _ui_fixtures.sched_ui

MakeApp = Callable[..., Awaitable[Flowrra]]


def crunch(n: int) -> int:
    """A module-level sync function: what a CPU-bound task must be."""
    return n * 2


@pytest.fixture
async def make_app() -> AsyncIterator[MakeApp]:
    """``await make_app(start=..., config=...)``: an app with two IO tasks, stopped at teardown."""
    apps: list[Flowrra] = []

    async def factory(*, start: bool = False, config: Config | None = None,
                      broker: str | None = None) -> Flowrra:
        app = Flowrra(config or Config(executor=ExecutorConfig(io_workers=3, cpu_workers=1)),
                      broker=broker)
        apps.append(app)

        @app.task()
        async def send_email(to: str) -> str:
            return f"Email sent to {to}"

        @app.task(name="always_fail", max_retries=0)
        async def boom() -> None:
            raise RuntimeError("kaput")

        if start:
            await app.start()
        return app

    yield factory
    for app in apps:
        await app.stop(timeout=2.0)
        forget(app)


def assert_one_truth(health: dict[str, Any]) -> None:
    """``healthy`` is ``status == "healthy"`` and agrees with every component."""
    assert health["healthy"] == (health["status"] == "healthy")
    parts_ok = all(c is None or c["healthy"] for c in health["components"].values())
    assert health["healthy"] == parts_ok, health


# -- get_stats ------------------------------------------------------------------------------
async def test_stats_report_app_running_and_this_process_executors(make_app: MakeApp) -> None:
    """0.1.8: ``app.running``; ``executors.io/cpu`` = ``{running, workers}`` or None."""
    app = await make_app()
    manager = FlowrraManager(app)
    before = await manager.get_stats()
    assert before["app"] == {"running": False}
    assert before["executors"] == {"io": None, "cpu": None}
    await app.start()
    after = await manager.get_stats()
    assert after["app"] == {"running": True} and after["is_running"] is True
    assert after["executors"] == {"io": {"running": True, "workers": 3},
                                  "cpu": {"running": True, "workers": 1}}


async def test_stats_tasks_count_registered_next_to_status_counts(make_app: MakeApp) -> None:
    """0.1.8: ``tasks.registered`` = number of registered tasks; ``tasks.pending`` an int."""
    app = await make_app(start=True)
    task_id = await app.submit("send_email", "a@b")
    await app.wait_for_result(task_id, timeout=5)
    stats = await FlowrraManager(app).get_stats()
    assert stats["tasks"]["registered"] == 2 == stats["registered_tasks"]
    assert stats["tasks"]["pending"] == 0 and stats["tasks"]["success"] == 1
    statuses = {s.value for s in TaskStatus}
    assert stats["total"] == sum(v for k, v in stats["tasks"].items() if k in statuses) == 1


async def test_stats_scheduler_summary_has_enabled_running_and_counts(make_app: MakeApp) -> None:
    """0.1.8: ``scheduler`` None without one, else ``{enabled: True, running, total_schedules,
    enabled_schedules}``."""
    app = await make_app()
    manager = FlowrraManager(app)
    assert (await manager.get_stats())["scheduler"] is None
    app.create_scheduler("memory://")
    await manager.create_schedule_cron("send_email", "0 9 * * *", args=["x"])
    await manager.create_schedule_interval("send_email", 60, args=["y"], enabled=False)
    summary = (await manager.get_stats())["scheduler"]
    assert summary["enabled"] is True and summary["running"] is False
    assert summary["total_schedules"] == 2 and summary["enabled_schedules"] == 1
    await app.scheduler.start()
    try:
        assert (await manager.get_stats())["scheduler"]["running"] is True
    finally:
        await app.scheduler.stop()


# -- health_check ---------------------------------------------------------------------------
async def test_health_of_an_app_that_is_not_started(make_app: MakeApp) -> None:
    """0.1.8's example: before ``start()``, Healthy False and "App is not running"."""
    app = await make_app()
    health = await FlowrraManager(app).health_check()
    assert health["healthy"] is False and health["status"] == "unhealthy"
    assert health["components"] == {
        "app": {"healthy": False, "message": "App is not running"},
        "io_executor": {"healthy": False, "message": "IO executor is not running"},
        "cpu_executor": None, "scheduler": None}
    assert_one_truth(health)


async def test_health_of_a_started_app(make_app: MakeApp) -> None:
    """0.1.8's example: after ``start()``, "App is running" / "IO executor is running"."""
    app = await make_app(start=True)
    health = await FlowrraManager(app).health_check()
    assert health["healthy"] is True and health["status"] == "healthy"
    assert health["components"]["app"] == {"healthy": True, "message": "App is running"}
    assert health["components"]["io_executor"] == {"healthy": True,
                                                   "message": "IO executor is running"}
    assert health["components"]["cpu_executor"] is None, "no CPU task: not a component"
    assert health["components"]["scheduler"] is None
    assert {"broker", "backend", "workers", "scheduler"} <= set(health["checks"])
    assert_one_truth(health)


async def test_health_reports_the_cpu_executor_when_cpu_tasks_exist(make_app: MakeApp) -> None:
    """0.1.8: ``cpu_executor`` is ``{healthy, "CPU executor is running"}`` once CPU tasks exist."""
    app = await make_app()
    app.task(cpu_bound=True)(crunch)
    manager = FlowrraManager(app)
    assert (await manager.health_check())["components"]["cpu_executor"] == {
        "healthy": False, "message": "CPU executor is not running"}
    await app.start()
    health = await manager.health_check()
    assert health["components"]["cpu_executor"] == {"healthy": True,
                                                    "message": "CPU executor is running"}
    assert health["healthy"] is True


async def test_health_scheduler_component(make_app: MakeApp) -> None:
    """0.1.8: "Scheduler is running" / "Scheduler is not running" (unhealthy when it should run)."""
    config = Config(scheduler=SchedulerConfig(database_url="memory://", enabled=True))
    app = await make_app(config=config, start=True)
    manager = FlowrraManager(app)
    running = await manager.health_check()
    assert running["components"]["scheduler"] == {"healthy": True, "message": "Scheduler is running"}
    assert running["healthy"] is True
    await app.scheduler.stop()
    stopped = await manager.health_check()
    assert stopped["components"]["scheduler"] == {"healthy": False,
                                                  "message": "Scheduler is not running"}
    assert stopped["healthy"] is False and stopped["status"] == "degraded"
    assert_one_truth(stopped)


async def test_health_ignores_a_scheduler_that_is_not_meant_to_run_here(make_app: MakeApp) -> None:
    """Ours: a scheduler not enabled in this process's config does not count against health."""
    app = await make_app(start=True)
    app.create_scheduler("memory://")
    health = await FlowrraManager(app).health_check()
    assert health["healthy"] is True
    component = health["components"]["scheduler"]
    assert component["healthy"] is True
    assert component["message"].startswith("Scheduler is not running")


async def test_health_of_a_producer_on_a_shared_broker(make_app: MakeApp,
                                                       tmp_sqlite_url: str) -> None:
    """Ours: degraded while no worker listens on the shared broker, healthy once one does."""
    producer = await make_app(broker=tmp_sqlite_url)
    manager = FlowrraManager(producer)
    alone = await manager.health_check()
    assert alone["status"] == "degraded" and alone["healthy"] is False
    assert alone["components"]["app"]["healthy"] is False
    assert alone["components"]["io_executor"] is None, "executors run in the workers"
    await make_app(broker=tmp_sqlite_url, start=True)
    served = await manager.health_check()
    assert served["healthy"] is True and served["components"]["app"]["healthy"] is True
    assert_one_truth(served)


async def test_health_with_an_unreachable_broker_is_unhealthy() -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused
    app = Flowrra(Config(broker=BrokerConfig(down, socket_timeout=0.3)))
    try:
        health = await FlowrraManager(app).health_check()
    finally:
        forget(app)
    assert health["status"] == "unhealthy" and health["healthy"] is False
    assert "unreachable" in health["components"]["app"]["message"]


# -- tasks, results, scheduler stats ----------------------------------------------------------
async def test_registered_tasks_are_awaitable_and_carry_qualname(make_app: MakeApp) -> None:
    """0.1.8: ``await list_registered_tasks()`` / ``get_task_info()``; ``qualname`` = where defined."""
    app = await make_app()
    manager = FlowrraManager(app)
    listed = {t["name"]: t for t in await manager.list_registered_tasks()}
    assert set(listed) == {"send_email", "always_fail"}
    assert {"name", "cpu_bound", "max_retries", "retry_delay"} <= set(listed["always_fail"])
    assert listed["always_fail"]["max_retries"] == 0
    info = await manager.get_task_info("send_email")
    assert info["module"] == __name__
    assert info["qualname"] == "make_app.<locals>.factory.<locals>.send_email"
    assert (await manager.get_task_info("always_fail"))["qualname"].endswith("<locals>.boom")
    assert await manager.get_task_info("nope") is None


async def test_task_result_has_completed_at(make_app: MakeApp) -> None:
    """0.1.8: ``{task_id, status, result, error, completed_at}``; ours fills ``completed_at``."""
    app = await make_app(start=True)
    manager = FlowrraManager(app)
    ok = await app.submit("send_email", "u@example.com")
    bad = await app.submit("always_fail")
    for task_id in (ok, bad):
        await app.wait_for_result(task_id, timeout=5)
    result = await manager.get_task_result(ok)
    assert result["status"] == TaskStatus.SUCCESS and result["error"] is None
    assert result["result"] == "Email sent to u@example.com"
    assert result["completed_at"] is not None and result["completed_at"] == result["finished_at"]
    failed = await manager.get_task_result(bad)
    assert failed["status"] == TaskStatus.FAILED and "kaput" in failed["error"]
    assert await manager.get_task_result("missing") is None


async def test_scheduler_stats_keys(make_app: MakeApp) -> None:
    """0.1.8: ``{running, check_interval, total_schedules, enabled_schedules, disabled_schedules}``."""
    app = await make_app()
    app.create_scheduler("memory://", check_interval=60.0)
    manager = FlowrraManager(app)
    for cron in ("0 9 * * *", "0 10 * * *"):
        await manager.create_schedule_cron("send_email", cron, args=["x"])
    await manager.create_schedule_interval("send_email", 5, args=["y"], enabled=False)
    stats = await manager.get_scheduler_stats()
    assert stats["running"] is False and stats["check_interval"] == 60.0
    assert (stats["total_schedules"], stats["enabled_schedules"],
            stats["disabled_schedules"]) == (3, 2, 1)
    assert stats["is_running"] is False and stats["total"] == 3, "ours stay"


async def test_schedule_calls_without_a_scheduler_raise_value_error(make_app: MakeApp) -> None:
    """0.1.8 raised ``ValueError('No scheduler configured ...')``; ours is also a ValueError."""
    manager = FlowrraManager(await make_app())
    calls = [manager.create_schedule_cron("send_email", "0 9 * * *"),
             manager.create_schedule_interval("send_email", 60),
             manager.enable_schedule("x"), manager.disable_schedule("x"),
             manager.delete_schedule("x")]
    for call in calls:
        with pytest.raises(ValueError, match="create_scheduler") as caught:
            await call
        assert isinstance(caught.value, SchedulerNotConfiguredError)


# -- the JSON API, on every framework -------------------------------------------------------------
async def test_api_tasks_is_a_list_and_detail_has_qualname(ui: Harness) -> None:
    """0.1.8: ``GET api/tasks`` → a JSON list; ``api/tasks/{name}`` has module and qualname."""
    listed = (await ui.get("api/tasks")).json()
    assert isinstance(listed, list) and {t["name"] for t in listed} >= {"ui.add", "ui.boom"}
    assert {"name", "cpu_bound", "max_retries", "retry_delay"} <= set(listed[0])
    detail = (await ui.get("api/tasks/ui.add")).json()
    assert detail["qualname"] == "build_app.<locals>.add" and detail["module"]
    missing = await ui.get("api/tasks/nope")
    assert missing.status == 404 and missing.json()["detail"] == missing.json()["error"]


async def test_api_stats_and_health_have_the_018_keys(ui: Harness) -> None:
    stats = (await ui.get("api/stats")).json()
    assert stats["app"] == {"running": True} and stats["executors"]["io"]["running"] is True
    assert stats["tasks"]["registered"] == 5 and stats["scheduler"] is None
    health = (await ui.get("api/health")).json()
    assert health["healthy"] is True and health["status"] == "healthy"
    assert health["components"]["app"]["message"] == "App is running"
    assert health["components"]["io_executor"]["message"] == "IO executor is running"
    assert health["components"]["cpu_executor"] is None


async def test_api_schedules_list_and_action_answers(sched_ui: Harness) -> None:
    """0.1.8: list answer; ``{status, schedule_id}`` for enable/disable; ``{deleted, schedule_id}``."""
    ui = sched_ui
    created = await ui.post("api/schedules/cron", json={"task_name": "ui.add", "cron": "0 9 * * *",
                                                        "args": [1, 2]})
    sid = created.json()["schedule_id"]
    assert created.json()["id"] == sid, "UI.md's clients read 'id'"
    listed = (await ui.get("api/schedules")).json()
    assert isinstance(listed, list) and [s["id"] for s in listed] == [sid]
    assert (await ui.get("api/stats")).json()["scheduler"]["enabled"] is True
    disabled = (await ui.put(f"api/schedules/{sid}/disable")).json()
    assert disabled["status"] == "disabled" and disabled["schedule_id"] == sid
    enabled = (await ui.put(f"api/schedules/{sid}/enable")).json()
    assert enabled["status"] == "enabled" and enabled["schedule_id"] == sid
    deleted = await ui.delete(f"api/schedules/{sid}")
    assert deleted.status == 200 and deleted.json() == {"deleted": True, "schedule_id": sid}
    again = await ui.delete(f"api/schedules/{sid}")
    assert again.status == 404, "ours keeps 404 for an unknown id (0.1.8: 200)"
    assert again.json()["deleted"] is False and again.json()["schedule_id"] == sid


async def test_api_errors_carry_detail(ui: Harness) -> None:
    """FastAPI-style clients read ``detail``: every JSON error has it, equal to ``error``."""
    replies = [await ui.get("api/tasks/nope"), await ui.get("api/executions?limit=0"),
               await ui.get("api/schedules"), await ui.get("api/no-such-endpoint")]
    assert [r.status for r in replies] == [404, 400, 503, 404]
    for reply in replies:
        body = reply.json()
        assert body["detail"] == body["error"] and body["detail"], body
