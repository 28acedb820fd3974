"""Scheduler semantics with a manual clock, on every store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flowrra.scheduler import Scheduler, slot_task_id

from .conftest import START, FakeApp, ManualClock


@pytest.fixture
def sched(store, clock, fake_app) -> Scheduler:
    return Scheduler(fake_app, store, clock=clock, misfire_grace=60.0)


async def run_for(sched: Scheduler, clock: ManualClock, seconds: int, step: float = 1.0) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        await sched.tick()


# -- creating --------------------------------------------------------------------------
async def test_same_schedule_twice_returns_the_same_id(sched):
    a = await sched.schedule_interval("jobs.x", 10, args=[1, {"b": 2, "a": 1.0}])
    b = await sched.schedule_interval("jobs.x", 10.0, args=(1.0, {"a": 1, "b": 2.0}))
    assert a == b
    c = await sched.schedule_cron("jobs.x", "@daily", kwargs={"n": 1})
    d = await sched.schedule_cron("jobs.x", "0  0 * * *", kwargs={"n": 1.0})
    assert c == d
    assert len(await sched.list_scheduled_tasks()) == 2
    # different values make different schedules
    assert await sched.schedule_interval("jobs.x", 10, args=[2]) != a
    assert await sched.schedule_interval("jobs.x", 10, args=[True]) != \
        await sched.schedule_interval("jobs.x", 10, args=[1])
    assert await sched.schedule_cron("jobs.x", "@daily", kwargs={"n": 1},
                                     timezone="Asia/Tokyo") != c


async def test_recreating_updates_options_but_keeps_state(sched, clock):
    sid = await sched.schedule_interval("jobs.x", 10, priority=1)
    await sched.disable_task(sid)
    clock.advance(5)
    assert await sched.schedule_interval("jobs.x", 10, priority=4, description="d") == sid
    task = await sched.get_scheduled_task(sid)
    assert (task.priority, task.description, task.enabled) == (4, "d", False)
    assert task.anchor_at == START


async def test_explicit_id_is_an_upsert(sched, clock):
    sid = await sched.schedule_cron("jobs.x", "0 * * * *", task_id="hourly-report")
    assert sid == "hourly-report"
    assert (await sched.get_scheduled_task(sid)).next_run_at == START + timedelta(hours=1)
    clock.advance(60)
    assert await sched.schedule_cron("jobs.x", "*/5 * * * *", task_id=sid) == sid
    task = await sched.get_scheduled_task(sid)
    assert task.cron == "*/5 * * * *"
    assert task.next_run_at == START + timedelta(minutes=5)
    assert len(await sched.list_scheduled_tasks()) == 1


async def test_validation_errors(sched):
    with pytest.raises(ValueError, match="never fires"):
        await sched.schedule_cron("jobs.x", "0 0 30 2 *")
    with pytest.raises(ValueError, match="positive number of seconds"):
        await sched.schedule_interval("jobs.x", 0)
    with pytest.raises(ValueError, match=r"at least 0\.001"):
        await sched.schedule_interval("jobs.x", 1e-9)
    with pytest.raises(ValueError, match="number of seconds"):
        await sched.schedule_interval("jobs.x", "5")
    with pytest.raises(ValueError, match="missed must be one of skip, run_once"):
        await sched.schedule_interval("jobs.x", 5, missed="all")
    with pytest.raises(ValueError, match="unknown time zone"):
        await sched.schedule_cron("jobs.x", "@daily", timezone="Nowhere/City")
    with pytest.raises(ValueError, match="JSON values"):
        await sched.schedule_interval("jobs.x", 5, args=[object()])
    with pytest.raises(ValueError, match="args must be a list"):
        await sched.schedule_interval("jobs.x", 5, args="abc")
    with pytest.raises(ValueError, match="run_at must be a datetime"):
        await sched.schedule_once("jobs.x", "tomorrow")
    assert await sched.list_scheduled_tasks() == []


# -- firing ----------------------------------------------------------------------------
async def test_interval_is_anchored_and_does_not_drift(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 10, args=[7], priority=2, max_retries=6,
                                        retry_delay=0.5)
    for lag in (10.3, 9.9, 10.7, 10.0, 9.1):  # irregular wake-ups
        clock.advance(lag)
        await sched.tick()
    slots = [START + timedelta(seconds=10 * k) for k in range(1, 6)]
    assert fake_app.ids == [slot_task_id(sid, s) for s in slots]
    first = fake_app.submitted[0]
    assert (first["name"], first["args"], first["priority"]) == ("jobs.x", (7,), 2)
    assert (first["max_retries"], first["retry_delay"]) == (6, 0.5)
    task = await sched.get_scheduled_task(sid)
    assert task.next_run_at == START + timedelta(seconds=60)
    assert task.run_count == 5


async def test_cron_fires_each_slot_once(sched, clock, fake_app):
    sid = await sched.schedule_cron("jobs.x", "*/2 * * * *")
    await run_for(sched, clock, 600, step=30)
    expected = [START + timedelta(minutes=m) for m in range(2, 11, 2)]
    assert fake_app.ids == [slot_task_id(sid, s) for s in expected]


async def test_cron_in_a_time_zone(sched, clock, fake_app):
    sid = await sched.schedule_cron("jobs.x", "0 9 * * *", timezone="America/New_York")
    assert (await sched.get_scheduled_task(sid)).next_run_at == START + timedelta(hours=14)


async def test_one_time_schedule_fires_once(sched, clock, fake_app):
    run_at = START + timedelta(seconds=30)
    sid = await sched.schedule_once("jobs.x", run_at, kwargs={"k": "v"})
    await run_for(sched, clock, 120, step=10)
    assert fake_app.ids == [slot_task_id(sid, run_at)]
    task = await sched.get_scheduled_task(sid)
    assert task.next_run_at is None and task.run_count == 1 and task.enabled


async def test_one_time_naive_run_at_is_read_in_its_time_zone(sched):
    sid = await sched.schedule_once("jobs.x", datetime(2024, 1, 1, 9, 0), timezone="Asia/Tokyo")
    assert (await sched.get_scheduled_task(sid)).run_at == START  # 09:00 JST == 00:00Z


async def test_one_time_in_the_past_runs_at_once(sched, clock, fake_app):
    sid = await sched.schedule_once("jobs.x", START - timedelta(days=1))
    await sched.tick()
    assert len(fake_app.ids) == 1 and fake_app.ids[0].startswith(f"sched:{sid}:")


async def test_late_slots_within_grace_are_caught_up(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 5)
    clock.advance(31)  # six slots due, the oldest 26 s late (< 60 s grace)
    assert await sched.tick() == 6
    assert fake_app.ids == [slot_task_id(sid, START + timedelta(seconds=5 * k))
                            for k in range(1, 7)]


async def test_missed_runs_are_skipped_by_default(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 60)
    clock.advance(3600 + 30)  # every scheduler was down for an hour
    assert await sched.tick() == 0
    task = await sched.get_scheduled_task(sid)
    assert task.next_run_at == START + timedelta(seconds=3660)
    assert task.missed == "skip"
    await run_for(sched, clock, 30, step=30)
    assert fake_app.ids == [slot_task_id(sid, START + timedelta(seconds=3660))]


async def test_missed_runs_can_run_once(sched, clock, fake_app):
    sid = await sched.schedule_cron("jobs.x", "*/10 * * * *", missed="run_once")
    clock.advance(3 * 3600 + 5)
    assert await sched.tick() == 1
    assert fake_app.ids == [slot_task_id(sid, START + timedelta(minutes=10))]
    task = await sched.get_scheduled_task(sid)
    assert task.next_run_at == START + timedelta(hours=3, minutes=10)


async def test_missed_one_time_schedule(sched, clock, fake_app):
    skip = await sched.schedule_once("jobs.x", START + timedelta(seconds=10))
    once = await sched.schedule_once("jobs.y", START + timedelta(seconds=10), missed="run_once")
    clock.advance(600)
    await sched.tick()
    assert fake_app.ids == [slot_task_id(once, START + timedelta(seconds=10))]
    assert (await sched.get_scheduled_task(skip)).next_run_at is None


async def test_disable_and_enable_recomputes_next_run(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 10)
    assert await sched.disable_task(sid)
    await run_for(sched, clock, 100, step=10)
    assert fake_app.ids == []
    clock.advance(5)  # 105 s
    assert await sched.enable_task(sid)
    task = await sched.get_scheduled_task(sid)
    assert task.enabled and task.next_run_at == START + timedelta(seconds=110)  # same phase
    await run_for(sched, clock, 10, step=5)
    assert fake_app.ids == [slot_task_id(sid, START + timedelta(seconds=110))]
    assert not await sched.enable_task("missing")
    assert not await sched.disable_task("missing")


async def test_unschedule(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 10)
    assert await sched.unschedule(sid)
    assert not await sched.unschedule(sid)
    await run_for(sched, clock, 30, step=10)
    assert fake_app.ids == [] and await sched.get_scheduled_task(sid) is None


async def test_failed_submission_is_retried_not_lost(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 10)
    fake_app.fail = 1
    clock.advance(10)
    assert await sched.tick() == 0
    clock.advance(1)
    assert await sched.tick() == 0  # backing off (retry_backoff = 5 s)
    clock.advance(5)
    assert await sched.tick() == 1
    assert fake_app.ids == [slot_task_id(sid, START + timedelta(seconds=10))]
    assert (await sched.get_stats())["errors"] == 1


async def test_run_now_does_not_touch_the_timetable(sched, clock, fake_app):
    sid = await sched.schedule_interval("jobs.x", 10)
    before = await sched.get_scheduled_task(sid)
    task_id = await sched.run_now(sid)
    assert task_id == fake_app.ids[0] and not task_id.startswith("sched:")
    assert (await sched.get_scheduled_task(sid)).next_run_at == before.next_run_at
    assert await sched.run_now("missing") is None


async def test_two_schedulers_on_one_store_fire_each_slot_once(space, clock):
    apps = [FakeApp(), FakeApp()]
    stores = [space.new_store(), space.new_store()]
    scheds = [Scheduler(app, st, clock=clock) for app, st in zip(apps, stores, strict=True)]
    sid = await scheds[0].schedule_interval("jobs.x", 1)
    for _ in range(20):
        clock.advance(1)
        for s in (scheds if clock.now.second % 2 else scheds[::-1]):
            await s.tick()
    ids = apps[0].ids + apps[1].ids
    assert sorted(ids) == sorted(slot_task_id(sid, START + timedelta(seconds=k))
                                 for k in range(1, 21))


async def test_to_dict_is_json_ready(sched):
    sid = await sched.schedule_cron("jobs.x", "0 9 * * mon", args=[1], kwargs={"a": [1, 2]},
                                    timezone="Europe/London", description="weekly")
    data = (await sched.get_scheduled_task(sid)).to_dict()
    json.dumps(data)
    for key in ("id", "task_name", "kind", "cron", "interval", "run_at", "timezone", "args",
                "kwargs", "enabled", "description", "priority", "max_retries", "retry_delay",
                "missed", "next_run_at", "last_run_at", "created_at", "updated_at"):
        assert key in data
    assert data["kind"] == "cron" and data["missed"] == "skip"
    assert data["next_run_at"] == "2024-01-01T09:00:00+00:00"
    assert data["created_at"] == START.isoformat()


async def test_stats(sched, clock, store):
    await sched.schedule_interval("jobs.x", 10)
    off = await sched.schedule_cron("jobs.y", "@hourly")
    await sched.schedule_once("jobs.z", START + timedelta(seconds=5))
    await sched.disable_task(off)
    stats = await sched.get_stats()
    assert stats["backend"] == store.kind
    assert (stats["total"], stats["enabled"], stats["disabled"]) == (3, 2, 1)
    assert stats["by_kind"] == {"cron": 1, "interval": 1, "once": 1}
    assert stats["next_run_at"] == (START + timedelta(seconds=5)).isoformat()
    assert stats["next_task_name"] == "jobs.z"
    assert stats["is_running"] is False and stats["check_interval"] == 60.0
    json.dumps(stats)


async def test_naive_clock_values_are_taken_as_utc(store, fake_app):
    sched = Scheduler(fake_app, store, clock=lambda: datetime(2024, 1, 1))
    assert sched.now() == datetime(2024, 1, 1, tzinfo=UTC)
