"""The result-backend contract: every backend (memory, Redis, SQLite, ...) must pass all of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from flowrra.backends import ResultBackend
from flowrra.exceptions import TaskTimeoutError
from flowrra.task import TaskResult, TaskStatus
from tests.conftest import unique, wait_until

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def record(status: TaskStatus = TaskStatus.PENDING, task_id: str | None = None,
           name: str = "job", **fields) -> TaskResult:
    return TaskResult(task_id or unique("r"), status, name, submitted_at=T0, **fields)


def full_record() -> TaskResult:
    return TaskResult(
        task_id=unique("full"), status=TaskStatus.FAILED, task_name="pkg.mod.job",
        result={"nested": [1, 2.5, None, "x"], "ok": False}, error="ValueError: bad",
        submitted_at=T0, started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=2, microseconds=5), retries=3,
        args=(1, "two", [3]), kwargs={"k": {"v": "ünïcødé"}}, traceback="Traceback...\n",
        priority=-2, queue="special", worker="host:1:abc",
        next_retry_at=T0 + timedelta(minutes=5), dead_lettered=True,
    )


async def test_store_get_round_trip_every_field(make_backend):
    async with make_backend() as backend:
        original = full_record()
        await backend.store(original)
        got = await backend.get(original.task_id)
        assert got == original
        assert got.submitted_at.tzinfo is not None and got.finished_at.tzinfo is not None
        assert isinstance(got.args, tuple)
        assert await backend.get("no-such-task") is None


async def test_returned_records_are_copies(make_backend):
    async with make_backend() as backend:
        original = record(kwargs={"a": 1})
        await backend.store(original)
        got = await backend.get(original.task_id)
        got.kwargs["a"] = 2
        got.status = TaskStatus.SUCCESS
        again = await backend.get(original.task_id)
        assert again.kwargs == {"a": 1} and again.status is TaskStatus.PENDING


async def test_overwrite_on_each_transition(make_backend):
    async with make_backend() as backend:
        rec = record()
        await backend.store(rec)
        for status in (TaskStatus.RUNNING, TaskStatus.RETRYING, TaskStatus.RUNNING,
                       TaskStatus.SUCCESS):
            rec = rec.copy()
            rec.status = status
            await backend.store(rec)
        rec.result = 42
        await backend.store(rec)
        got = await backend.get(rec.task_id)
        assert got.status is TaskStatus.SUCCESS and got.result == 42
        counts = await backend.count_by_status()
        assert counts == {s.value: int(s is TaskStatus.SUCCESS) for s in TaskStatus}
        assert await backend.list_by_status(TaskStatus.RUNNING) == []
        assert [r.task_id for r in await backend.list_by_status("success")] == [rec.task_id]


async def test_delete(make_backend):
    async with make_backend() as backend:
        rec = record(TaskStatus.SUCCESS)
        await backend.store(rec)
        assert await backend.delete(rec.task_id) is True
        assert await backend.delete(rec.task_id) is False
        assert await backend.get(rec.task_id) is None
        assert await backend.list_by_status(TaskStatus.SUCCESS) == []
        assert (await backend.count_by_status())["success"] == 0


async def test_clear_only_touches_this_store(make_backend, tmp_path):
    async with make_backend() as backend, make_backend(path=tmp_path / "other") as other:
        mine = [record(s) for s in (TaskStatus.PENDING, TaskStatus.SUCCESS, TaskStatus.FAILED)]
        theirs = record(TaskStatus.SUCCESS)
        for rec in mine:
            await backend.store(rec)
        await other.store(theirs)
        await backend.clear()
        for rec in mine:
            assert await backend.get(rec.task_id) is None
        assert set((await backend.count_by_status()).values()) == {0}
        assert await other.get(theirs.task_id) == theirs
        assert (await other.count_by_status())["success"] == 1


async def test_list_by_status_newest_first_with_paging(make_backend):
    async with make_backend() as backend:
        recs = [record(TaskStatus.SUCCESS, name=f"job{i}") for i in range(6)]
        for rec in recs:
            await backend.store(rec)
        await backend.store(record(TaskStatus.FAILED))
        newest_first = [r.task_id for r in reversed(recs)]
        assert [r.task_id for r in await backend.list_by_status(TaskStatus.SUCCESS)] == newest_first
        page = await backend.list_by_status(TaskStatus.SUCCESS, limit=2, offset=1)
        assert [r.task_id for r in page] == newest_first[1:3]
        assert await backend.list_by_status(TaskStatus.SUCCESS, limit=5, offset=10) == []
        # updating a record makes it the newest
        await backend.store(recs[0])
        assert (await backend.list_by_status("success", limit=1))[0].task_id == recs[0].task_id
        with pytest.raises(ValueError, match="Unknown task status"):
            await backend.list_by_status("bogus")


async def test_count_by_status(make_backend):
    async with make_backend() as backend:
        plan = {TaskStatus.PENDING: 3, TaskStatus.RUNNING: 1, TaskStatus.SUCCESS: 2}
        for status, n in plan.items():
            for _ in range(n):
                await backend.store(record(status))
        expected = {s.value: plan.get(s, 0) for s in TaskStatus}
        assert await backend.count_by_status() == expected


async def test_search_by_id_prefix_and_name(make_backend):
    async with make_backend() as backend:
        a = record(TaskStatus.SUCCESS, task_id="abc123" + unique(), name="emails.send_welcome")
        b = record(TaskStatus.FAILED, task_id="abd456" + unique(), name="billing.charge")
        c = record(TaskStatus.PENDING, task_id="xyz789" + unique(), name="emails.send_digest")
        for rec in (a, b, c):
            await backend.store(rec)
        assert [r.task_id for r in await backend.search("abc")] == [a.task_id]
        assert {r.task_id for r in await backend.search("ab")} == {a.task_id, b.task_id}
        assert {r.task_id for r in await backend.search("SEND_")} == {a.task_id, c.task_id}
        assert [r.task_id for r in await backend.search(c.task_id)] == [c.task_id]
        assert await backend.search("nothing-like-this") == []


# -- waiting ---------------------------------------------------------------------------
def waiting(backend: ResultBackend, task_id: str, count: int = 1) -> Callable[[], bool]:
    """True once ``count`` wait_for calls registered: a completion stored from then on must
    reach them (the read after registering, or the notification, sees it)."""
    return lambda: len(backend._waiters.get(task_id, ())) >= count


async def test_wait_for_completion_stored_before(make_backend):
    async with make_backend() as backend:
        rec = record(TaskStatus.SUCCESS, result=1)
        await backend.store(rec)
        assert await backend.wait_for(rec.task_id, timeout=2) == rec


async def test_wait_for_completion_stored_during(make_backend):
    async with make_backend() as backend:
        rec = record()
        await backend.store(rec)
        waiter = asyncio.create_task(backend.wait_for(rec.task_id, timeout=10))
        await wait_until(waiting(backend, rec.task_id), message="wait_for to register")
        assert not waiter.done()
        done = rec.copy()
        done.status, done.result = TaskStatus.SUCCESS, "ok"
        await backend.store(done)
        assert await asyncio.wait_for(waiter, 10) == done


async def test_wait_for_sees_completion_stored_by_another_instance(make_backend):
    async with make_backend() as waiting_side:
        if not waiting_side.shared:
            pytest.skip("in-process backend: no other process can store")
        async with make_backend() as worker_side:
            rec = record()
            await worker_side.store(rec)
            waiter = asyncio.create_task(waiting_side.wait_for(rec.task_id, timeout=10))
            await wait_until(waiting(waiting_side, rec.task_id), message="wait_for to register")
            assert not waiter.done()
            done = rec.copy()
            done.status = TaskStatus.FAILED
            await worker_side.store(done)
            assert (await asyncio.wait_for(waiter, 10)).status is TaskStatus.FAILED


async def test_wait_for_completion_landing_between_read_and_wait(make_backend, monkeypatch):
    """The race: the record is read (not final), then completes before the wait starts."""
    async with make_backend() as backend:
        async with make_backend() as other:
            writer = other if backend.shared else backend
            rec = record(TaskStatus.RUNNING)
            await backend.store(rec)
            done = rec.copy()
            done.status = TaskStatus.SUCCESS
            real_read = backend._get_if_final  # the read wait_for does after subscribing

            async def read_then_complete(task_id: str) -> TaskResult | None:
                stale = await real_read(task_id)
                await writer.store(done)
                if writer is not backend:  # give the notification time to cross processes
                    await wait_until(lambda: _final(backend, task_id), timeout=5)
                return stale

            monkeypatch.setattr(backend, "_get_if_final", read_then_complete)
            got = await backend.wait_for(rec.task_id, timeout=5)
            assert got.status is TaskStatus.SUCCESS


async def _final(backend: ResultBackend, task_id: str) -> bool:
    record = await type(backend).get(backend, task_id)
    return record is not None and record.is_complete


async def test_wait_for_times_out(make_backend):
    async with make_backend() as backend:
        rec = record(TaskStatus.RUNNING)
        await backend.store(rec)
        with pytest.raises(TaskTimeoutError) as info:
            await backend.wait_for(rec.task_id, timeout=0.2)
        assert isinstance(info.value, asyncio.TimeoutError)
        assert rec.task_id in str(info.value)
        assert not backend._waiters  # no leaked waiter


async def test_concurrent_waiters_all_wake(make_backend):
    async with make_backend() as backend:
        rec = record()
        await backend.store(rec)
        waiters = [asyncio.create_task(backend.wait_for(rec.task_id, timeout=10)) for _ in range(5)]
        await wait_until(waiting(backend, rec.task_id, 5), message="five waiters to register")
        assert not any(w.done() for w in waiters)
        done = rec.copy()
        done.status = TaskStatus.CANCELLED
        await backend.store(done)
        results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
        assert all(r.status is TaskStatus.CANCELLED for r in results)


# -- expiry ----------------------------------------------------------------------------
async def test_ttl_expiry(make_backend):
    async with make_backend(ttl=1) as backend:
        rec = record(TaskStatus.SUCCESS)
        await backend.store(rec)
        assert await backend.get(rec.task_id) == rec

        async def gone() -> bool:
            return (await backend.get(rec.task_id)) is None

        await wait_until(gone, timeout=10, interval=0.1, message="the record to expire")
        assert await backend.list_by_status(TaskStatus.SUCCESS) == []
        assert (await backend.count_by_status())["success"] == 0


async def test_second_instance_sees_the_same_records(make_backend):
    async with make_backend() as first:
        if not first.shared:
            pytest.skip("in-process backend: not shared")
        async with make_backend() as second:
            rec = full_record()
            await first.store(rec)
            assert await second.get(rec.task_id) == rec
            assert [r.task_id for r in await second.list_by_status(rec.status)] == [rec.task_id]
