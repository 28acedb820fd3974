"""flowrra 0.1.8's scheduler API (SCHEDULER.md, guides/scheduling.rst, its docstrings) on ours.

Every schedule lives in a tmp_path SQLite file through the 0.1.8 class names.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import flowrra.scheduler as scheduler_pkg
from flowrra import Flowrra
from flowrra.management import FlowrraManager
from flowrra.scheduler import CronExpression, ScheduledTask, Scheduler, ScheduleType
from flowrra.scheduler.backends import (
    BaseSchedulerBackend,
    SQLiteSchedulerBackend,
    get_scheduler_backend,
)
from tests.conftest import wait_until

MONDAY_0830 = datetime(2024, 1, 1, 8, 30)


@pytest.fixture
async def app(tmp_path: Path):
    """A started app with one task and a scheduler on a tmp_path SQLite file."""
    app = Flowrra()
    app.ran = []  # type: ignore[attr-defined]

    @app.task()
    async def send_daily_report(who: str = "team") -> str:
        app.ran.append(who)  # type: ignore[attr-defined]
        return "Report sent"

    app.create_scheduler(backend=SQLiteSchedulerBackend(tmp_path / "schedules.db"),
                         check_interval=0.05)
    yield app
    await app.stop()


def test_scheduler_exports_the_0_1_8_names() -> None:
    for name in ("Scheduler", "ScheduledTask", "ScheduleType", "CronExpression"):
        assert name in scheduler_pkg.__all__
    assert [(t.name, t.value) for t in ScheduleType] == [
        ("CRON", "cron"), ("INTERVAL", "interval"), ("ONE_TIME", "one_time")]


def test_backends_module_imports_without_database_drivers() -> None:
    code = ("import sys, flowrra.scheduler.backends as b; "
            "assert set(b.__all__) == {'BaseSchedulerBackend', 'SQLiteSchedulerBackend', "
            "'PostgreSQLSchedulerBackend', 'MySQLSchedulerBackend', 'get_scheduler_backend'}; "
            "assert 'asyncpg' not in sys.modules and 'aiomysql' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_scheduler_backend_defaults_to_sqlite_and_takes_paths(tmp_path: Path) -> None:
    default = get_scheduler_backend(None)
    assert isinstance(default, SQLiteSchedulerBackend)
    assert isinstance(default, BaseSchedulerBackend)
    assert get_scheduler_backend(str(tmp_path / "plain.db")).path == str(tmp_path / "plain.db")
    assert SQLiteSchedulerBackend(tmp_path / "x.db").path == str(tmp_path / "x.db")
    with pytest.raises(ValueError):
        get_scheduler_backend("redis://localhost/0")


def test_postgres_and_mysql_backends_are_our_stores() -> None:
    pytest.importorskip("asyncpg")
    pytest.importorskip("aiomysql")
    from flowrra.scheduler.backends import MySQLSchedulerBackend, PostgreSQLSchedulerBackend

    pg = get_scheduler_backend("postgresql://postgres@127.0.0.1:5432/test")
    my = get_scheduler_backend("mysql://root@127.0.0.1:3306/test")
    assert isinstance(pg, PostgreSQLSchedulerBackend) and isinstance(pg, BaseSchedulerBackend)
    assert isinstance(my, MySQLSchedulerBackend)


async def test_scheduled_task_has_schedule_type_and_schedule(app) -> None:
    sched = app.scheduler
    cron_id = await sched.schedule_cron(task_name="send_daily_report", cron="0 9 * * *",
                                        description="Daily report at 9 AM")
    every_id = await sched.schedule_interval(task_name="send_daily_report", interval=3600)
    run_at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    once_id = await sched.schedule_once("send_daily_report", run_at)
    cron, every, once = [await sched.get_scheduled_task(i) for i in (cron_id, every_id, once_id)]
    assert isinstance(cron, ScheduledTask)
    assert (cron.schedule_type, cron.schedule) == (ScheduleType.CRON, "0 9 * * *")
    assert (every.schedule_type, every.schedule) == (ScheduleType.INTERVAL, "3600")
    assert once.schedule_type is ScheduleType.ONE_TIME
    assert datetime.fromisoformat(once.schedule) == run_at


async def test_to_dict_and_management_list_show_schedule_type(app) -> None:
    sid = await app.scheduler.schedule_cron("send_daily_report", "0 9 * * 1")
    listed = await FlowrraManager(app).list_schedules()
    assert [(d["id"], d["schedule_type"], d["schedule"]) for d in listed] == [
        (sid, "cron", "0 9 * * 1")]
    task = await app.scheduler.get_scheduled_task(sid)
    assert ScheduledTask.from_dict(task.to_dict()).schedule == "0 9 * * 1"


def test_cron_next_run_is_strictly_after_with_seconds_zero() -> None:
    cron = CronExpression("0 9 * * *")
    assert cron.next_run(datetime(2024, 1, 1, 9, 0)) == datetime(2024, 1, 2, 9, 0)
    expected = {
        "*/15 * * * *": datetime(2024, 1, 1, 8, 45),
        "0 0 1 * *": datetime(2024, 2, 1, 0, 0),
        "30 8 * * 0": datetime(2024, 1, 7, 8, 30),
        "30 8 * * 7": datetime(2024, 1, 7, 8, 30),
        "5,10 * * * *": datetime(2024, 1, 1, 9, 5),
    }
    for text, when in expected.items():
        assert CronExpression(text).next_run(MONDAY_0830) == when, text


def test_cron_next_run_naive_in_naive_out_aware_in_aware_out() -> None:
    now = CronExpression("0 9 * * *").next_run()
    assert now.tzinfo is None and (now.hour, now.minute, now.second) == (9, 0, 0)
    assert datetime.now() < now <= datetime.now() + timedelta(days=1)
    aware = CronExpression("0 9 * * *").next_run(datetime(2024, 1, 1, 9, 0, tzinfo=UTC))
    assert aware == datetime(2024, 1, 2, 9, 0, tzinfo=UTC) and aware.tzinfo is not None


def test_cron_matches_str_repr() -> None:
    cron = CronExpression("0 9 * * *")
    assert cron.matches(datetime(2024, 1, 1, 9, 0))
    assert not cron.matches(datetime(2024, 1, 1, 9, 1))
    assert str(cron) == "0 9 * * *"
    assert repr(cron) == "CronExpression('0 9 * * *')"


def test_cron_errors_are_value_errors() -> None:
    for bad in ("* * * *", "60 * * * *", "* 24 * * *", "a * * * *", "*/0 * * * *"):
        with pytest.raises(ValueError):
            CronExpression(bad)


async def test_scheduling_an_unregistered_task_raises_value_error(app) -> None:
    with pytest.raises(ValueError, match="nope"):
        await app.scheduler.schedule_cron("nope", "0 9 * * *")
    with pytest.raises(ValueError, match="nope"):
        await app.scheduler.schedule_interval("nope", 60)


async def test_enable_disable_unknown_id_is_falsy_known_is_truthy(app) -> None:
    sid = await app.scheduler.schedule_interval("send_daily_report", 60)
    assert await app.scheduler.disable_task(sid)
    assert not (await app.scheduler.get_scheduled_task(sid)).enabled
    assert await app.scheduler.enable_task(sid)
    assert not await app.scheduler.enable_task("missing")
    assert not await app.scheduler.disable_task("missing")


async def test_app_start_runs_a_due_schedule(app) -> None:
    """SCHEDULER.md: app.start() starts the scheduler created by create_scheduler()."""
    await app.scheduler.schedule_once("send_daily_report", datetime.now(UTC), args=("ops",))
    await app.start()
    await wait_until(lambda: app.ran == ["ops"], message="the one-time schedule ran")
    assert isinstance(app.scheduler, Scheduler) and app.scheduler.is_running
