"""Graceful stop: running tasks finish within the timeout, the rest is handed back untouched."""

from __future__ import annotations

import asyncio

from flowrra import Flowrra, TaskStatus
from tests.conftest import wait_until


async def test_stop_waits_for_running_tasks(make_app, gate) -> None:
    app = await make_app(io_workers=2)

    @app.task(name="held")
    async def held(n: int) -> int:
        return await gate.hold(n)

    ids = [await app.submit(held, n) for n in range(2)]
    await wait_until(lambda: gate.active == 2, message="both running")
    stopping = asyncio.ensure_future(app.stop(wait=True, timeout=10))
    await wait_until(lambda: app.worker is None, message="stop begun")
    assert not stopping.done()  # it is waiting for the running tasks
    gate.open.set()
    await asyncio.wait_for(stopping, timeout=10)
    assert not app.is_running
    assert sorted(gate.finished) == [0, 1]
    await app.start()
    for n, task_id in enumerate(ids):
        result = await app.get_result(task_id)
        assert (result.status, result.result) == (TaskStatus.SUCCESS, n)


async def test_stop_hands_back_queued_tasks_untouched(make_app, gate) -> None:
    app = await make_app(io_workers=1)
    ran: list[int] = []

    @app.task(name="held")
    async def held() -> None:
        await gate.hold()

    @app.task(name="queued")
    async def queued(n: int) -> int:
        ran.append(n)
        return n

    blocker = await app.submit(held)
    await wait_until(lambda: gate.active == 1, message="blocker running")
    waiting = [await app.submit(queued, n) for n in range(3)]
    stopping = asyncio.ensure_future(app.stop(wait=True, timeout=10))
    await wait_until(lambda: app.worker is None, message="worker detached")
    gate.open.set()
    await asyncio.wait_for(stopping, timeout=10)
    assert ran == []
    assert (await app.broker.stats())["queued"] == 3
    await app.start()
    assert (await app.get_result(blocker)).status is TaskStatus.SUCCESS
    for task_id in waiting:
        assert (await app.get_result(task_id)).status is TaskStatus.PENDING
    results = [await app.wait_for_result(i, timeout=5) for i in waiting]
    assert [r.result for r in results] == [0, 1, 2] and ran == [0, 1, 2]


async def test_stop_timeout_interrupts_and_hands_back(make_app) -> None:
    app = await make_app(io_workers=1)
    attempts = 0
    started = asyncio.Event()
    interrupted = asyncio.Event()

    @app.task(name="long")
    async def long() -> int:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            return attempts
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise
        return -1

    task_id = await app.submit(long)
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(app.stop(wait=True, timeout=0.2), timeout=10)
    assert interrupted.is_set() and not app.is_running
    assert (await app.broker.stats())["queued"] + (await app.broker.stats())["leased"] == 1
    record = await app.backend.get(task_id)
    assert not record.is_complete
    await app.start()
    result = await app.wait_for_result(task_id, timeout=5)
    assert (result.status, result.result) == (TaskStatus.SUCCESS, 2)


async def test_stop_without_waiting(make_app) -> None:
    app = await make_app(io_workers=1)
    started = asyncio.Event()

    @app.task(name="forever")
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    await app.submit(forever)
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.wait_for(app.stop(wait=False), timeout=10)
    assert not app.is_running


async def test_stop_with_idle_worker_is_prompt(app: Flowrra) -> None:
    await asyncio.wait_for(app.stop(wait=True, timeout=30), timeout=5)
    assert not app.is_running
