"""Submission: argument checks before anything is stored, bulk and delayed submission, waiting."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest

from flowrra import Flowrra, FlowrraError, TaskStatus, TaskTimeoutError
from flowrra.app import _pending_record
from flowrra.backends import InMemoryBackend
from flowrra.exceptions import SerializationError
from flowrra.task import utcnow
from tests.conftest import wait_until


class Opaque:
    pass


@pytest.mark.parametrize(("args", "kwargs"), [
    ((Opaque(),), {}),
    ((), {"when": datetime.now(UTC)}),
    (([1, {2, 3}],), {}),
    ((math.nan,), {}),
    ((), {"x": math.inf}),
    ((b"bytes",), {}),
])
async def test_unserializable_arguments_are_refused_before_anything_happens(
        app: Flowrra, events, args, kwargs) -> None:
    @app.task(name="target")
    async def target(*a, **k) -> None: ...

    @app.task(name="marker")
    async def marker() -> None: ...

    with pytest.raises(SerializationError) as info:
        await app.submit(target, *args, **kwargs)
    message = str(info.value)
    assert "task 'target'" in message and ("JSON" in message)
    assert isinstance(info.value, FlowrraError) and isinstance(info.value, TypeError)
    assert sum((await app.backend.count_by_status()).values()) == 0
    assert (await app.broker.stats())["queued"] == 0
    # Events are delivered in order: once the marker's event arrives, any event for the
    # refused task would already be here.
    marker_id = await app.submit(marker)
    await wait_until(lambda: marker_id in events.task_ids(), message="marker event")
    assert events.task_ids() == {marker_id}


async def test_submit_many(app: Flowrra, events) -> None:
    @app.task(name="mul")
    async def mul(a: int, b: int = 1) -> int:
        return a * b

    @app.task(name="const")
    async def const() -> str:
        return "c"

    ids = await app.submit_many([(mul, (2, 3), {}), ("mul", (4,), {"b": 5}), const])
    assert len(ids) == 3 and len(set(ids)) == 3
    results = [await app.wait_for_result(i, timeout=5) for i in ids]
    assert [r.result for r in results] == [6, 20, "c"]
    await wait_until(lambda: all("success" in events.statuses(i) for i in ids), message="events")
    assert all(events.statuses(i) == ["pending", "running", "success"] for i in ids)
    assert await app.submit_many([]) == []


async def test_submit_many_is_all_or_nothing_on_bad_arguments(app: Flowrra) -> None:
    @app.task(name="echo")
    async def echo(x: object) -> object:
        return x

    with pytest.raises(SerializationError):
        await app.submit_many([(echo, (1,), {}), (echo, (Opaque(),), {})])
    assert sum((await app.backend.count_by_status()).values()) == 0
    assert (await app.broker.stats())["queued"] == 0


async def test_apply_async_with_task_id_is_idempotent(app: Flowrra) -> None:
    runs = 0

    @app.task(name="once")
    async def once() -> int:
        nonlocal runs
        runs += 1
        return runs

    first = await app.apply_async(once, task_id="fixed-id-1")
    second = await app.apply_async(once, task_id="fixed-id-1")
    assert first == second == "fixed-id-1"
    assert (await app.wait_for_result(first, timeout=5)).result == 1
    assert await app.apply_async(once, task_id="fixed-id-1") == "fixed-id-1"
    marker = await app.submit(once)
    assert (await app.wait_for_result(marker, timeout=5)).result == 2
    assert runs == 2


async def test_apply_async_with_an_evicted_record_does_not_leave_it_pending() -> None:
    """The broker remembers the id after its record was evicted: nothing new, nothing stuck."""
    app = Flowrra(backend=InMemoryBackend(max_results=1))
    runs = 0

    @app.task(name="evicted")
    async def evicted() -> None:
        nonlocal runs
        runs += 1

    async with app:
        await app.wait_for_result(await app.apply_async(evicted, task_id="fixed-id-2"), timeout=5)
        await app.wait_for_result(await app.submit(evicted), timeout=5)  # evicts fixed-id-2
        assert await app.get_result("fixed-id-2") is None
        assert await app.apply_async(evicted, task_id="fixed-id-2") == "fixed-id-2"
        assert await app.get_result("fixed-id-2") is None  # not a pending record forever
        assert (await app.broker.stats())["queued"] == 0
        assert runs == 2


async def test_apply_async_resubmits_a_pending_record_the_broker_never_got(app: Flowrra) -> None:
    """A submitter that died between storing "pending" and enqueuing left an orphan."""

    @app.task(name="orphan")
    async def orphan() -> str:
        return "ran"

    await app._record(_pending_record("fixed-id-3", "orphan", (), {}, utcnow(), 0, "default"))
    assert await app.apply_async(orphan, task_id="fixed-id-3") == "fixed-id-3"
    assert (await app.wait_for_result("fixed-id-3", timeout=5)).result == "ran"


async def test_apply_async_options_override_the_decorator(app: Flowrra) -> None:
    calls = 0

    @app.task(name="opt", max_retries=0)
    async def opt(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("again")
        return x

    task_id = await app.apply_async(opt, (5,), max_retries=2, retry_delay=0.01)
    result = await app.wait_for_result(task_id, timeout=5)
    assert (result.status, result.result, result.retries) == (TaskStatus.SUCCESS, 5, 2)


async def test_countdown_delays_the_task(make_app) -> None:
    app = await make_app(io_workers=1)

    @app.task(name="stamp")
    async def stamp() -> str:
        return datetime.now(UTC).isoformat()

    far = await app.apply_async(stamp, countdown=60)
    now = await app.submit(stamp)
    assert (await app.wait_for_result(now, timeout=5)).is_success
    assert (await app.get_result(far)).status is TaskStatus.PENDING
    assert (await app.broker.stats())["delayed"] == 1
    assert await app.cancel(far) is True
    assert (await app.broker.stats())["delayed"] == 0
    assert (await app.get_result(far)).status is TaskStatus.CANCELLED

    before = datetime.now(UTC)
    soon = await app.apply_async(stamp, countdown=0.3)
    result = await app.wait_for_result(soon, timeout=5)
    assert result.is_success
    assert result.started_at >= before + timedelta(seconds=0.3)


async def test_eta_delays_the_task(app: Flowrra) -> None:
    @app.task(name="noop")
    async def noop() -> None: ...

    eta = datetime.now(UTC) + timedelta(seconds=0.3)
    result = await app.wait_for_result(await app.apply_async(noop, eta=eta), timeout=5)
    assert result.is_success and result.started_at >= eta


async def test_wait_for_result_times_out(app: Flowrra, gate) -> None:
    @app.task(name="stuck")
    async def stuck() -> None:
        await gate.hold()

    task_id = await app.submit(stuck)
    with pytest.raises(TaskTimeoutError) as info:
        await app.wait_for_result(task_id, timeout=0.1)
    assert str(info.value) == f"Task '{task_id}' did not complete within 0.1s"
    with pytest.raises(asyncio.TimeoutError):
        await app.wait_for_result(task_id, timeout=0.05)
    with pytest.raises(TaskTimeoutError):
        await app.wait_for_result("never-submitted", timeout=0.05)
    gate.open.set()
    assert (await app.wait_for_result(task_id, timeout=5)).is_success


async def test_wait_for_result_never_misses_a_completion(make_app) -> None:
    """Completions land at every point around the wait; none may be missed."""
    app = await make_app(io_workers=4)

    @app.task(name="instant")
    async def instant(n: int) -> int:
        return n

    @app.task(name="yields")
    async def yields(n: int) -> int:
        for _ in range(n % 4):
            await asyncio.sleep(0)
        return n

    for n in range(400):
        task_id = await app.submit(yields if n % 2 else instant, n)
        for _ in range(n % 5):
            await asyncio.sleep(0)
        result = await app.wait_for_result(task_id, timeout=5)
        assert result.result == n


async def test_many_waiters_on_one_task(app: Flowrra, gate) -> None:
    @app.task(name="shared")
    async def shared() -> str:
        await gate.hold()
        return "all"

    task_id = await app.submit(shared)
    waiters = [asyncio.ensure_future(app.wait_for_result(task_id, timeout=5)) for _ in range(20)]
    await wait_until(lambda: gate.active == 1, message="task running")
    gate.open.set()
    assert {r.result for r in await asyncio.gather(*waiters)} == {"all"}
    assert app.backend._waiters == {}
