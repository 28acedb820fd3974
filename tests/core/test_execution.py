"""Running tasks in process: lifecycle, results, concurrency, isolation of failures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowrra import ExecutorNotRunningError, Flowrra, TaskStatus
from flowrra.backends import InMemoryBackend
from flowrra.brokers import InMemoryBroker
from tests.conftest import wait_until

NOT_RUNNING = "Executor is not running. Call start() first."


async def test_submit_and_wait_for_success(app: Flowrra) -> None:
    @app.task(name="add")
    async def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    task_id = await app.submit(add, 2, 3, scale=10)
    assert isinstance(task_id, str) and task_id
    result = await app.wait_for_result(task_id, timeout=5)
    assert result.status is TaskStatus.SUCCESS and result.is_success and result.is_complete
    assert (result.result, result.error, result.retries) == (50, None, 0)
    assert (result.task_id, result.task_name, result.args, result.kwargs) == (
        task_id, "add", (2, 3), {"scale": 10})
    for stamp in (result.submitted_at, result.started_at, result.finished_at):
        assert stamp is not None and stamp.utcoffset() == timedelta(0)
    assert result.submitted_at <= result.started_at <= result.finished_at
    assert (await app.get_result(task_id)).result == 50


async def test_submit_by_name(app: Flowrra) -> None:
    @app.task(name="named.echo")
    async def echo(value: str) -> str:
        return value

    task_id = await app.submit("named.echo", "hi")
    assert (await app.wait_for_result(task_id, timeout=5)).result == "hi"


async def test_get_result_of_unknown_id_is_none(app: Flowrra) -> None:
    assert await app.get_result("does-not-exist") is None


async def test_using_the_app_before_start_raises() -> None:
    app = Flowrra()

    @app.task(name="noop")
    async def noop() -> None: ...

    for call in (app.submit(noop), app.get_result("x"), app.wait_for_result("x", timeout=1),
                 app.cancel("x"), app.submit_many([noop])):
        with pytest.raises(ExecutorNotRunningError) as info:
            await call
        assert str(info.value) == NOT_RUNNING
    assert not app.is_running


async def test_async_with_and_is_running() -> None:
    app = Flowrra()

    @app.task(name="noop")
    async def noop() -> str:
        return "done"

    assert app.is_running is False
    async with app as running:
        assert running is app and app.is_running is True
        task_id = await app.submit(noop)
        assert (await app.wait_for_result(task_id, timeout=5)).result == "done"
    assert app.is_running is False
    with pytest.raises(ExecutorNotRunningError):
        await app.submit(noop)


async def test_from_urls_defaults_to_memory() -> None:
    app = Flowrra.from_urls()
    assert isinstance(app.broker, InMemoryBroker) and isinstance(app.backend, InMemoryBackend)
    async with app:
        @app.task(name="one")
        async def one() -> int:
            return 1

        assert (await app.wait_for_result(await app.submit(one), timeout=5)).result == 1


async def test_stop_is_idempotent_and_app_restarts(make_app) -> None:
    app = await make_app()

    @app.task(name="noop")
    async def noop() -> int:
        return 1

    await app.stop()
    await app.stop()
    await app.start()
    assert app.is_running
    assert (await app.wait_for_result(await app.submit(noop), timeout=5)).result == 1


async def test_io_concurrency_is_limited_to_io_workers(make_app, gate) -> None:
    app = await make_app(io_workers=3)

    @app.task(name="held")
    async def held(n: int) -> int:
        return await gate.hold(n)

    ids = [await app.submit(held, n) for n in range(8)]
    await wait_until(lambda: gate.active == 3, message="three tasks running")
    gate.open.set()
    results = [await app.wait_for_result(i, timeout=5) for i in ids]
    assert [r.result for r in results] == list(range(8))
    assert gate.max_active == 3


async def test_io_tasks_run_concurrently_up_to_the_limit(make_app) -> None:
    """Four tasks that each wait for all four to have started can only finish if concurrent."""
    app = await make_app(io_workers=4)
    arrived = 0
    all_here = asyncio.Event()

    @app.task(name="meet")
    async def meet() -> bool:
        nonlocal arrived
        arrived += 1
        if arrived == 4:
            all_here.set()
        await asyncio.wait_for(all_here.wait(), timeout=5)
        return True

    ids = [await app.submit(meet) for _ in range(4)]
    results = [await app.wait_for_result(i, timeout=10) for i in ids]
    assert all(r.is_success for r in results), [r.error for r in results]


async def test_an_exception_fails_only_its_task(make_app) -> None:
    app = await make_app(io_workers=2, max_retries=0)

    @app.task(name="bad")
    async def bad(n: int) -> None:
        raise KeyError(f"missing {n}")

    @app.task(name="good")
    async def good(n: int) -> int:
        return n

    ids = []
    for n in range(10):
        ids.append(await app.submit(bad if n % 2 else good, n))
    results = [await app.wait_for_result(i, timeout=5) for i in ids]
    for n, result in enumerate(results):
        if n % 2:
            assert result.status is TaskStatus.FAILED
            assert result.error == f"KeyError: 'missing {n}'"
        else:
            assert result.status is TaskStatus.SUCCESS and result.result == n
    assert app.is_running


class Unusual(BaseException):
    """Some libraries raise BaseException subclasses (test frameworks, greenlet exits)."""


@pytest.mark.parametrize("exc", [SystemExit(3), Unusual("odd"), asyncio.CancelledError("self")],
                         ids=["SystemExit", "BaseException", "CancelledError"])
async def test_a_task_raising_anything_does_not_kill_the_worker(make_app, exc) -> None:
    """A worker never dies of a task, whatever the task raises (KeyboardInterrupt aside)."""
    app = await make_app(io_workers=1, max_retries=0)

    @app.task(name="rude")
    async def rude() -> None:
        raise exc

    @app.task(name="fine")
    async def fine() -> str:
        return "ok"

    bad = await app.submit(rude)
    result = await app.wait_for_result(bad, timeout=5)
    assert result.status is TaskStatus.FAILED
    assert type(exc).__name__ in result.error
    assert (await app.wait_for_result(await app.submit(fine), timeout=5)).result == "ok"
    assert app.is_running


async def test_unserializable_result_fails_only_that_task(make_app) -> None:
    app = await make_app(io_workers=1)

    @app.task(name="returns_object", max_retries=0)
    async def returns_object() -> object:
        return object()

    @app.task(name="returns_nan", max_retries=0)
    async def returns_nan() -> float:
        return float("nan")

    @app.task(name="fine")
    async def fine() -> list[int]:
        return [1, 2]

    for name in ("returns_object", "returns_nan"):
        result = await app.wait_for_result(await app.submit(name), timeout=5)
        assert result.status is TaskStatus.FAILED
        assert f"The result of task '{name}'" in result.error
        assert result.result is None
    result = await app.wait_for_result(await app.submit(fine), timeout=5)
    assert result.status is TaskStatus.SUCCESS and result.result == [1, 2]


async def test_records_keep_submission_data_on_every_state(app: Flowrra, events) -> None:
    attempts = 0

    @app.task(name="flaky", max_retries=2, retry_delay=0.01)
    async def flaky(x: int, *, y: str) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 2:
            raise RuntimeError("not yet")
        return y * x

    task_id = await app.submit(flaky, 2, y="ab")
    result = await app.wait_for_result(task_id, timeout=5)
    assert result.result == "abab"
    await wait_until(lambda: "success" in events.statuses(task_id), message="success event")
    updates = events.updates(task_id)
    assert [u["status"] for u in updates] == ["pending", "running", "retrying", "running", "success"]
    submitted = updates[0]["submitted_at"]
    for update in updates:
        assert update["submitted_at"] == submitted
        assert update["args"] == [2] and update["kwargs"] == {"y": "ab"}
        assert update["task_name"] == "flaky"
        for key in ("submitted_at", "started_at", "finished_at"):
            if update[key] is not None:
                assert update[key].endswith("+00:00"), (key, update[key])
