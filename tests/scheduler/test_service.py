"""The scheduler as a running service, with a real Flowrra app."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from flowrra import Flowrra
from flowrra.config import Config, SchedulerConfig
from flowrra.exceptions import TaskNotFoundError
from flowrra.scheduler import (
    MemoryScheduleStore,
    Scheduler,
    SQLiteScheduleStore,
    create_scheduler,
    get_scheduler_backend,
    run_scheduler,
    slot_task_id,
)
from tests.conftest import wait_until

from .conftest import START, FakeApp, ManualClock


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def make_app() -> tuple[Flowrra, list[tuple]]:
    app = Flowrra.from_urls()
    runs: list[tuple] = []

    @app.task(name="jobs.record")
    async def record(*args, **kwargs):
        runs.append((args, kwargs))
        return len(runs)

    return app, runs


async def test_interval_schedule_runs_tasks_through_a_real_app():
    app, runs = make_app()
    await app.start()
    sched = Scheduler(app, "memory://", check_interval=60.0)
    try:
        sid = await sched.schedule_interval("jobs.record", 0.5, args=[1], kwargs={"k": 2},
                                            priority=3)
        await sched.start()
        assert sched.is_running
        anchor = (await sched.get_scheduled_task(sid)).anchor_at
        for k in (1, 2):
            slot = anchor + timedelta(seconds=0.5 * k)
            result = await app.wait_for_result(slot_task_id(sid, slot), timeout=5)
            assert result.status == "success"
        assert runs[:2] == [((1,), {"k": 2})] * 2
    finally:
        await sched.stop()
        await app.stop()
    assert not sched.is_running


async def test_unknown_task_is_refused():
    app, _ = make_app()
    sched = Scheduler(app, "memory://")
    with pytest.raises(TaskNotFoundError):
        await sched.schedule_cron("jobs.nope", "@daily")


async def test_task_function_resolves_to_its_registered_name():
    app = Flowrra.from_urls()

    @app.task(name="custom.name")
    async def job():
        return 1

    sched = Scheduler(app, "memory://")
    sid = await sched.schedule_interval(job, 60)
    assert (await sched.get_scheduled_task(sid)).task_name == "custom.name"


async def test_crash_between_submit_and_mark_neither_loses_nor_doubles():
    """A scheduler dies after submitting; the next one re-submits the same id."""
    app, runs = make_app()
    await app.start()
    clock = ManualClock(datetime.now(UTC))
    store = MemoryScheduleStore()

    class Crash(Exception):
        pass

    real_finish = store.finish

    async def crash_on_finish(*args, **kwargs):
        raise Crash("process killed")

    first = Scheduler(app, store, clock=clock, claim_timeout=30)
    second = Scheduler(app, store, clock=clock, claim_timeout=30)
    try:
        sid = await first.schedule_interval("jobs.record", 100)
        clock.advance(100)
        store.finish = crash_on_finish  # the process dies before marking the slot
        with pytest.raises(Crash):
            await first.tick()
        store.finish = real_finish
        slot_id = slot_task_id(sid, (await store.get(sid)).next_run_at)
        await app.wait_for_result(slot_id, timeout=5)
        assert await second.tick() == 0  # the lease is still held
        clock.advance(30)  # lease expired: the survivor takes over
        assert await second.tick() == 1
        task = await store.get(sid)
        assert task.run_count == 1 and task.next_run_at == task.anchor_at + timedelta(seconds=200)
        # Once the broker holds nothing (queued or running), every submission has run.
        async def drained() -> bool:
            stats = await app.broker.stats()
            return stats["queued"] + stats["delayed"] + stats["leased"] == 0

        await wait_until(drained, timeout=5, message="the broker to drain")
        assert len(runs) == 1  # the broker dropped the duplicate submission
    finally:
        await app.stop()


async def test_changes_by_another_process_are_picked_up_promptly(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    fired = asyncio.Event()

    class App(FakeApp):
        async def apply_async(self, *args, **kwargs):
            fired.set()
            return await super().apply_async(*args, **kwargs)

    runner = Scheduler(App(), url, check_interval=3600)  # would otherwise sleep an hour
    idle = asyncio.Event()  # set once the runner planned its sleep: later changes must wake it
    read_wake_time = runner.backend.next_wake_time

    async def next_wake_time():
        wake_at = await read_wake_time()
        idle.set()
        return wake_at

    monkeypatch.setattr(runner.backend, "next_wake_time", next_wake_time)
    await runner.start()
    other = Scheduler(None, url)  # e.g. the web UI in another process
    try:
        await wait_until(idle.is_set, message="the runner to go idle")
        started = time.monotonic()
        await other.schedule_once("jobs.x", datetime.now(UTC) + timedelta(seconds=0.2))
        await asyncio.wait_for(fired.wait(), 5)
        assert time.monotonic() - started < 2.5
    finally:
        await runner.stop()
        await other.close()


async def test_schedules_survive_a_restart(tmp_path):
    """A cron, an interval and a one-time job created before a restart fire after it."""
    path = tmp_path / "schedules.db"
    clock = ManualClock()
    before = Scheduler(FakeApp(), SQLiteScheduleStore(path), clock=clock)
    cron = await before.schedule_cron("jobs.report", "*/5 * * * *")
    every = await before.schedule_interval("jobs.poll", 120)
    once = await before.schedule_once("jobs.hello", START + timedelta(minutes=3))
    await before.close()

    app = FakeApp()  # a new process: new app, new scheduler, same file
    after = Scheduler(app, f"sqlite:///{path}", clock=clock)
    assert {t.id for t in await after.list_scheduled_tasks()} == {cron, every, once}
    for _ in range(10):
        clock.advance(30)
        await after.tick()
    assert sorted(app.ids) == sorted([
        slot_task_id(cron, START + timedelta(minutes=5)),
        slot_task_id(every, START + timedelta(minutes=2)),
        slot_task_id(every, START + timedelta(minutes=4)),
        slot_task_id(once, START + timedelta(minutes=3)),
    ])
    await after.close()


async def test_app_create_scheduler_defaults_to_sqlite_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = Flowrra.from_urls()
    sched = app.create_scheduler()
    assert isinstance(sched.backend, SQLiteScheduleStore)
    assert sched.backend.path == "flowrra_schedules.db"
    await sched.list_scheduled_tasks()
    assert (tmp_path / "flowrra_schedules.db").exists()
    await sched.close()


async def test_create_scheduler_uses_config_and_explicit_backends(tmp_path):
    url = f"sqlite:///{tmp_path / 'cfg.db'}"
    app = Flowrra(Config(scheduler=SchedulerConfig(database_url=url)))
    sched = create_scheduler(app, check_interval=5)
    assert sched.backend.path == str(tmp_path / "cfg.db") and sched.check_interval == 5
    store = MemoryScheduleStore()
    assert create_scheduler(app, backend=store).backend is store
    assert create_scheduler(app, backend="memory://").backend.kind == "memory"


async def test_app_starts_an_enabled_scheduler(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    app = Flowrra(Config(scheduler=SchedulerConfig(database_url=url, check_interval=1,
                                                   enabled=True)))
    runs = []

    @app.task(name="jobs.tick")
    async def tick():
        runs.append(1)

    await app.start()
    try:
        assert app.scheduler is not None and app.scheduler.is_running
        await app.scheduler.schedule_interval("jobs.tick", 0.3)
        await wait_for(lambda: _true(len(runs) >= 2), 5, "two scheduled runs")
    finally:
        await app.stop()
    assert not app.scheduler.is_running


async def _true(value: bool) -> bool:
    return value


async def test_run_scheduler_until_stop_event():
    app, runs = make_app()
    await app.start()
    stop = asyncio.Event()
    sched = Scheduler(app, "memory://")
    await sched.schedule_interval("jobs.record", 0.2)
    runner = asyncio.create_task(run_scheduler(app, stop, sched))
    try:
        await wait_for(lambda: _true(len(runs) >= 1), 5, "a scheduled run")
        assert sched.is_running
        stop.set()
        assert await asyncio.wait_for(runner, 5) is sched
        assert not sched.is_running
    finally:
        await app.stop()


# -- URLs --------------------------------------------------------------------------------
def test_sqlite_urls_keep_relative_and_absolute_paths():
    assert get_scheduler_backend("sqlite:///rel.db").path == "rel.db"
    assert get_scheduler_backend("sqlite:///dir/rel.db").path == "dir/rel.db"
    assert get_scheduler_backend("sqlite:////abs/x.db").path == "/abs/x.db"
    assert get_scheduler_backend("sqlite://").path == ":memory:"
    with pytest.raises(ValueError, match=r"sqlite:////absolute\.db"):
        get_scheduler_backend("sqlite://host/x.db")


def test_other_urls():
    from flowrra.scheduler.mysql import MySQLScheduleStore
    from flowrra.scheduler.postgres import PostgresScheduleStore

    assert get_scheduler_backend("memory://").kind == "memory"
    pg = get_scheduler_backend("postgres://u:p@db:5432/app?schema=sched&application_name=x")
    assert isinstance(pg, PostgresScheduleStore) and pg.schema == "sched"
    assert pg.dsn == "postgresql://u:p@db:5432/app?application_name=x"
    assert isinstance(get_scheduler_backend("postgresql://db/app"), PostgresScheduleStore)
    my = get_scheduler_backend("mysql://u:p%40ss@db:3307/app?table_prefix=x_")
    assert isinstance(my, MySQLScheduleStore) and my.table_prefix == "x_"
    assert my._connect_args["password"] == "p@ss" and my._connect_args["port"] == 3307
    store = MemoryScheduleStore()
    assert get_scheduler_backend(store) is store


@pytest.mark.parametrize("url", ["redis://localhost", "mongodb://x/y", "nothing", ""])
def test_unsupported_urls_list_the_supported_ones(url):
    with pytest.raises(ValueError) as info:
        get_scheduler_backend(url)
    for scheme in ("memory://", "sqlite:///", "sqlite:////", "postgresql://", "mysql://"):
        assert scheme in str(info.value)


def test_mysql_url_needs_a_database():
    with pytest.raises(ValueError, match="must name a database"):
        get_scheduler_backend("mysql://root@localhost")


@pytest.mark.parametrize(("module", "attr", "url", "extra"), [
    ("postgres", "asyncpg", "postgresql://db/x", "flowrra[postgresql]"),
    ("mysql", "aiomysql", "mysql://db/x", "flowrra[mysql]"),
])
def test_missing_driver_names_the_extra(monkeypatch, module, attr, url, extra):
    import importlib

    mod = importlib.import_module(f"flowrra.scheduler.{module}")
    monkeypatch.setattr(mod, attr, None)  # as if the driver were not installed
    with pytest.raises(ImportError, match=re.escape(f"pip install {extra}")):
        get_scheduler_backend(url)
