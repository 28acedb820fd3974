"""Cancellation of waiting and running tasks, and priority order."""

from __future__ import annotations

import asyncio
from typing import Any

from flowrra import Flowrra, TaskStatus
from tests.conftest import wait_until


async def _running(app: Flowrra, task_id: str) -> bool:
    record = await app.get_result(task_id)
    return record is not None and record.status is TaskStatus.RUNNING


async def test_cancel_pending_task_never_runs(make_app, gate, events) -> None:
    app = await make_app(io_workers=1)
    ran: list[str] = []

    @app.task(name="blocker")
    async def blocker() -> None:
        await gate.hold("blocker")

    @app.task(name="victim")
    async def victim() -> None:
        ran.append("victim")

    @app.task(name="after")
    async def after() -> str:
        return "after"

    block = await app.submit(blocker)
    await wait_until(lambda: gate.active == 1, message="blocker running")
    doomed = await app.submit(victim)
    later = await app.submit(after)
    assert await app.cancel(doomed) is True
    record = await app.get_result(doomed)
    assert record.status is TaskStatus.CANCELLED and record.is_complete and not record.is_success
    assert "cancel" in record.error.lower()
    gate.open.set()
    assert (await app.wait_for_result(later, timeout=5)).result == "after"
    assert (await app.wait_for_result(block, timeout=5)).is_success
    assert ran == []
    assert (await app.wait_for_result(doomed, timeout=1)).status is TaskStatus.CANCELLED
    await wait_until(lambda: "cancelled" in events.statuses(doomed), message="cancel event")
    assert events.statuses(doomed) == ["pending", "cancelled"]
    assert await app.cancel(doomed) is False


async def test_cancel_running_task_interrupts_it(make_app, events) -> None:
    app = await make_app(io_workers=1)
    started = asyncio.Event()
    interrupted = asyncio.Event()

    @app.task(name="long", max_retries=3)
    async def long() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise

    @app.task(name="next")
    async def next_one() -> int:
        return 2

    task_id = await app.submit(long)
    await asyncio.wait_for(started.wait(), timeout=5)
    assert await app.cancel(task_id) is True
    result = await app.wait_for_result(task_id, timeout=5)
    assert result.status is TaskStatus.CANCELLED and "cancel" in result.error.lower()
    assert result.retries == 0 and result.finished_at is not None
    assert interrupted.is_set()
    assert (await app.wait_for_result(await app.submit(next_one), timeout=5)).result == 2
    await wait_until(lambda: "cancelled" in events.statuses(task_id), message="cancel event")
    assert events.statuses(task_id) == ["pending", "running", "cancelled"]


async def test_cancel_running_task_that_swallows_cancellation(make_app) -> None:
    app = await make_app(io_workers=1)
    started = asyncio.Event()

    @app.task(name="deaf")
    async def deaf() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "pretended nothing happened"
        return "unreachable"

    task_id = await app.submit(deaf)
    await asyncio.wait_for(started.wait(), timeout=5)
    assert await app.cancel(task_id) is True
    assert (await app.wait_for_result(task_id, timeout=5)).status is TaskStatus.CANCELLED


async def test_cancel_finished_or_unknown_returns_false(app: Flowrra) -> None:
    @app.task(name="quick", max_retries=0)
    async def quick(fail: bool) -> int:
        if fail:
            raise RuntimeError("x")
        return 1

    done = await app.submit(quick, False)
    failed = await app.submit(quick, True)
    await app.wait_for_result(done, timeout=5)
    await app.wait_for_result(failed, timeout=5)
    assert await app.cancel(done) is False
    assert await app.cancel(failed) is False
    assert await app.cancel("no-such-task") is False
    assert (await app.get_result(done)).status is TaskStatus.SUCCESS


async def test_cancelled_task_can_be_retried(make_app, gate) -> None:
    app = await make_app(io_workers=1)

    @app.task(name="blocker")
    async def blocker() -> None:
        await gate.hold()

    @app.task(name="later")
    async def later(x: int) -> int:
        return x * 2

    await app.submit(blocker)
    await wait_until(lambda: gate.active == 1, message="blocker running")
    task_id = await app.submit(later, 21)
    assert await app.cancel(task_id)
    submitted_at = (await app.get_result(task_id)).submitted_at
    gate.open.set()
    assert await app.retry(task_id) is True
    assert (await app.get_result(task_id)).status in (TaskStatus.PENDING, TaskStatus.RUNNING,
                                                      TaskStatus.SUCCESS)
    result = await app.wait_for_result(task_id, timeout=5)
    assert (result.status, result.result, result.args) == (TaskStatus.SUCCESS, 42, (21,))
    assert result.submitted_at == submitted_at


async def _one_runner_held(make_app, gate) -> tuple[Flowrra, Any, list[str]]:
    """An app whose only runner is busy until ``gate`` opens, and a task that logs its label.

    Everything submitted meanwhile waits in the queue, so the run order shows priority order.
    """
    app = await make_app(io_workers=1)
    order: list[str] = []

    @app.task(name="blocker")
    async def blocker() -> None:
        await gate.hold()

    @app.task(name="record")
    async def record(label: str) -> None:
        order.append(label)

    await app.submit(blocker)
    await wait_until(lambda: gate.active == 1, message="blocker running")
    return app, record, order


async def test_priorities_lower_first_fifo_among_equals(make_app, gate) -> None:
    app, record, order = await _one_runner_held(make_app, gate)
    plan = [("p5-a", 5), ("p1-a", 1), ("p3", 3), ("p1-b", 1), ("p0", 0), ("p5-b", 5),
            ("neg", -2), ("p1-c", 1)]
    ids = [await app.submit(record, label, priority=priority) for label, priority in plan]
    gate.open.set()
    for task_id in ids:
        await app.wait_for_result(task_id, timeout=5)
    assert order == ["neg", "p0", "p1-a", "p1-b", "p1-c", "p3", "p5-a", "p5-b"]
    assert (await app.get_result(ids[0])).priority == 5


async def test_priority_through_apply_async_and_submit_many(make_app, gate) -> None:
    app, record, order = await _one_runner_held(make_app, gate)
    low = await app.submit_many([(record, ("many-9",), {})], priority=9)
    high = await app.apply_async(record, ("async-0",), priority=0)
    mid = await app.apply_async("record", kwargs={"label": "async-4"}, priority=4)
    gate.open.set()
    for task_id in [*low, high, mid]:
        await app.wait_for_result(task_id, timeout=5)
    assert order == ["async-0", "async-4", "many-9"]
