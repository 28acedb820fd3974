"""The contract every schedule store honours: memory, SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from flowrra.scheduler import ScheduledTask

from .conftest import START

T0 = START


def make_task(task_id: str = "s1", **changes) -> ScheduledTask:
    task = ScheduledTask(
        id=task_id, task_name="jobs.report", kind="interval", interval=10.0,
        args=[1, "é", {"k": [1.5, None, True]}], kwargs={"to": "ops", "n": 2},
        description="nightly ✓", priority=3, max_retries=5, retry_delay=2.5,
        missed="run_once", anchor_at=T0, next_run_at=T0 + timedelta(seconds=10),
        created_at=T0, updated_at=T0,
    )
    return replace(task, **changes)


async def test_open_is_idempotent_and_schema_is_versioned(store, space):
    await store.open()
    if space.kind in ("sqlite", "postgresql", "mysql"):
        assert await store.schema_version() == 1
        second = space.new_store()
        await second.open()  # migrating an up-to-date schema is a no-op
        assert await second.schema_version() == 1


async def test_round_trip_keeps_every_field(store):
    task = make_task(last_run_at=T0 + timedelta(microseconds=123456), run_count=4)
    assert await store.insert(task)
    loaded = await store.get("s1")
    assert loaded == task
    assert loaded.next_run_at.tzinfo is not None
    assert loaded.to_dict()["next_run_at"] == "2024-01-01T00:00:10+00:00"


async def test_times_are_stored_as_utc(store):
    plus5 = timezone(timedelta(hours=5))
    local = datetime(2024, 6, 1, 17, 30, 0, 250, tzinfo=plus5)
    await store.insert(make_task(next_run_at=local))
    loaded = await store.get("s1")
    assert loaded.next_run_at == datetime(2024, 6, 1, 12, 30, 0, 250, tzinfo=UTC)
    assert loaded.next_run_at.utcoffset() == timedelta(0)


async def test_cron_and_once_rows(store):
    cron = make_task("c", kind="cron", cron="0 9 * * mon-fri", interval=None,
                     timezone="Europe/London", anchor_at=None)
    once = make_task("o", kind="once", interval=None, run_at=T0 + timedelta(days=1),
                     args=[], kwargs={}, description=None)
    assert await store.insert(cron) and await store.insert(once)
    assert await store.get("c") == cron
    assert await store.get("o") == once
    assert await store.get("missing") is None


async def test_insert_never_overwrites(store):
    assert await store.insert(make_task())
    assert not await store.insert(make_task(priority=9))
    assert (await store.get("s1")).priority == 3


async def test_update_without_reschedule_keeps_run_state(store):
    await store.insert(make_task())
    await store.claim("s1", T0 + timedelta(seconds=10), "me", T0 + timedelta(minutes=1), T0)
    later = T0 + timedelta(hours=1)
    changed = make_task(priority=7, description="new", next_run_at=later, updated_at=later)
    assert await store.update(changed, reschedule=False)
    loaded = await store.get("s1")
    assert (loaded.priority, loaded.description, loaded.updated_at) == (7, "new", later)
    assert loaded.next_run_at == T0 + timedelta(seconds=10)
    assert loaded.claimed_by == "me"
    assert not await store.update(make_task("nope"), reschedule=False)


async def test_update_with_reschedule_replaces_run_state(store):
    await store.insert(make_task())
    await store.claim("s1", T0 + timedelta(seconds=10), "me", T0 + timedelta(minutes=1), T0)
    later = T0 + timedelta(hours=1)
    assert await store.update(make_task(interval=60.0, next_run_at=later), reschedule=True)
    loaded = await store.get("s1")
    assert (loaded.interval, loaded.next_run_at, loaded.claimed_by) == (60.0, later, None)


async def test_list_orders_by_creation_and_filters_enabled(store):
    await store.insert(make_task("b", created_at=T0 + timedelta(seconds=2)))
    await store.insert(make_task("a", created_at=T0 + timedelta(seconds=2), enabled=False))
    await store.insert(make_task("c", created_at=T0))
    assert [t.id for t in await store.list()] == ["c", "a", "b"]
    assert [t.id for t in await store.list(enabled_only=True)] == ["c", "b"]


async def test_delete(store):
    await store.insert(make_task())
    assert await store.delete("s1")
    assert not await store.delete("s1")
    assert await store.list() == []


async def test_set_enabled(store):
    await store.insert(make_task())
    later = T0 + timedelta(days=1)
    # enabling an enabled schedule does not move its next run
    assert await store.set_enabled("s1", True, later, T0)
    assert (await store.get("s1")).next_run_at == T0 + timedelta(seconds=10)
    assert await store.set_enabled("s1", False, None, T0)
    assert not (await store.get("s1")).enabled
    assert await store.set_enabled("s1", True, later, T0 + timedelta(hours=1))
    loaded = await store.get("s1")
    assert loaded.enabled and loaded.next_run_at == later
    assert loaded.updated_at == T0 + timedelta(hours=1)
    assert not await store.set_enabled("nope", True, later, T0)
    assert not await store.set_enabled("nope", False, None, T0)


async def test_due_selects_enabled_unclaimed_rows_in_order(store):
    await store.insert(make_task("late", next_run_at=T0 + timedelta(seconds=5)))
    await store.insert(make_task("early", next_run_at=T0 + timedelta(seconds=1)))
    await store.insert(make_task("future", next_run_at=T0 + timedelta(hours=1)))
    await store.insert(make_task("off", enabled=False, next_run_at=T0))
    await store.insert(make_task("done", kind="once", interval=None, run_at=T0,
                                 next_run_at=None))
    now = T0 + timedelta(seconds=10)
    assert [t.id for t in await store.due(now, 10)] == ["early", "late"]
    assert [t.id for t in await store.due(now, 1)] == ["early"]
    assert await store.claim("early", T0 + timedelta(seconds=1), "x", now + timedelta(30), now)
    assert [t.id for t in await store.due(now, 10)] == ["late"]


async def test_claim_has_exactly_one_winner(store, space):
    slot = T0 + timedelta(seconds=10)
    await store.insert(make_task())
    others = [space.new_store() for _ in range(3)]
    stores = [store, *others]
    until = slot + timedelta(seconds=30)
    results = await asyncio.gather(*(
        stores[i % len(stores)].claim("s1", slot, f"owner-{i}", until, slot) for i in range(12)
    ))
    assert results.count(True) == 1
    winner = f"owner-{results.index(True)}"
    assert (await store.get("s1")).claimed_by == winner


async def test_claim_conditions(store):
    slot = T0 + timedelta(seconds=10)
    await store.insert(make_task())
    assert not await store.claim("s1", slot + timedelta(seconds=1), "a", slot, slot)  # wrong slot
    assert not await store.claim("nope", slot, "a", slot, slot)
    assert await store.claim("s1", slot, "a", slot + timedelta(seconds=30), slot)
    assert not await store.claim("s1", slot, "b", slot + timedelta(seconds=30), slot)
    # the lease expires: someone else may take over
    expired = slot + timedelta(seconds=30)
    assert await store.claim("s1", slot, "b", expired + timedelta(seconds=30), expired)
    await store.set_enabled("s1", False, None, slot)
    await store.set_enabled("s1", True, slot, slot)
    await store.set_enabled("s1", False, None, slot)
    assert not await store.claim("s1", slot, "c", slot + timedelta(seconds=30), expired)


async def test_finish_requires_the_lease(store):
    slot, nxt = T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)
    await store.insert(make_task())
    await store.claim("s1", slot, "a", slot + timedelta(seconds=30), slot)
    assert not await store.finish("s1", slot, "b", nxt, slot)
    assert not await store.finish("s1", nxt, "a", nxt, slot)
    ran = slot + timedelta(milliseconds=5)
    assert await store.finish("s1", slot, "a", nxt, ran)
    loaded = await store.get("s1")
    assert (loaded.next_run_at, loaded.last_run_at, loaded.run_count) == (nxt, ran, 1)
    assert (loaded.claimed_by, loaded.claim_until) == (None, None)
    assert not await store.finish("s1", slot, "a", nxt, ran)  # already finished
    # a skipped slot advances without counting a run
    await store.claim("s1", nxt, "a", nxt + timedelta(seconds=30), nxt)
    assert await store.finish("s1", nxt, "a", None, None)
    loaded = await store.get("s1")
    assert (loaded.next_run_at, loaded.last_run_at, loaded.run_count) == (None, ran, 1)


async def test_release_delays_the_retry(store):
    slot = T0 + timedelta(seconds=10)
    retry_at = slot + timedelta(seconds=5)
    await store.insert(make_task())
    await store.claim("s1", slot, "a", slot + timedelta(seconds=30), slot)
    assert not await store.release("s1", slot, "b", retry_at)
    assert await store.release("s1", slot, "a", retry_at)
    assert await store.due(slot + timedelta(seconds=1), 10) == []
    assert not await store.claim("s1", slot, "b", slot + timedelta(seconds=30), slot)
    assert [t.id for t in await store.due(retry_at, 10)] == ["s1"]
    assert await store.claim("s1", slot, "b", retry_at + timedelta(seconds=30), retry_at)


async def test_next_wake_time(store):
    assert await store.next_wake_time() is None
    await store.insert(make_task("a", next_run_at=T0 + timedelta(seconds=20)))
    await store.insert(make_task("b", next_run_at=T0 + timedelta(seconds=10)))
    await store.insert(make_task("off", enabled=False, next_run_at=T0))
    assert await store.next_wake_time() == T0 + timedelta(seconds=10)
    # a claimed row wakes us when its lease ends
    await store.claim("b", T0 + timedelta(seconds=10), "x", T0 + timedelta(seconds=40),
                      T0 + timedelta(seconds=10))
    assert await store.next_wake_time() == T0 + timedelta(seconds=20)


async def test_change_version_tracks_mutations_not_claims(store):
    v0 = await store.change_version()
    await store.insert(make_task())
    v1 = await store.change_version()
    assert v1 > v0
    slot = T0 + timedelta(seconds=10)
    await store.claim("s1", slot, "a", slot + timedelta(seconds=30), slot)
    assert await store.change_version() == v1
    await store.finish("s1", slot, "a", slot + timedelta(seconds=10), slot)
    v2 = await store.change_version()
    assert v2 > v1
    await store.set_enabled("s1", False, None, slot)
    v3 = await store.change_version()
    assert v3 > v2
    await store.update(make_task(priority=1), reschedule=False)
    v4 = await store.change_version()
    assert v4 > v3
    await store.delete("s1")
    assert await store.change_version() > v4


async def test_another_instance_sees_changes(store, space):
    other = space.new_store()
    await other.open()
    v = await other.change_version()
    await store.insert(make_task())
    assert await other.change_version() > v
    assert (await other.get("s1")).task_name == "jobs.report"


async def test_concurrent_first_open_migrates_once(space):
    fresh = [space.new_store() for _ in range(4)]
    await asyncio.gather(*(s.open() for s in fresh))
    await fresh[0].insert(make_task())
    assert [t.id for t in await fresh[-1].list()] == ["s1"]
    if space.kind != "memory":
        assert await fresh[1].schema_version() == 1


@pytest.mark.parametrize("bad", ["x y", "1abc", "a;drop"])
def test_table_prefix_is_validated(bad, tmp_path):
    from flowrra.scheduler import SQLiteScheduleStore

    with pytest.raises(ValueError, match="table_prefix"):
        SQLiteScheduleStore(tmp_path / "x.db", table_prefix=bad)
