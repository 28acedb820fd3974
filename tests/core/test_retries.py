"""Retries with exponential backoff, final failures, dead letters, and time limits."""

from __future__ import annotations

import asyncio
import random
import statistics
from datetime import datetime

import pytest

from flowrra import Flowrra, TaskStatus
from flowrra.backends import InMemoryBackend
from flowrra.brokers import InMemoryBroker
from flowrra.worker import backoff_delay
from tests.conftest import wait_until


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- backoff ---------------------------------------------------------------------------------
def test_backoff_stays_within_exponential_bounds() -> None:
    random.seed(1234)
    for attempt in range(12):
        ceiling = min(60.0, 0.5 * 2 ** attempt)
        for _ in range(200):
            delay = backoff_delay(0.5, attempt, 60.0)
            assert ceiling / 2 <= delay <= ceiling, (attempt, delay)


def test_backoff_grows_exponentially_until_the_cap() -> None:
    random.seed(99)
    means = [statistics.fmean(backoff_delay(1.0, a, 30.0) for _ in range(2000)) for a in range(8)]
    # Equal jitter: mean is 3/4 of the ceiling (1, 2, 4, 8, 16, then capped at 30).
    for attempt, mean in enumerate(means[:5]):
        assert mean == pytest.approx(0.75 * 2 ** attempt, rel=0.05)
    assert means[5] == pytest.approx(0.75 * 30, rel=0.05)
    assert means[6] == pytest.approx(means[5], rel=0.05) == pytest.approx(means[7], rel=0.05)


def test_backoff_has_jitter_and_a_cap() -> None:
    random.seed(7)
    samples = {backoff_delay(1.0, 3, 300.0) for _ in range(50)}
    assert len(samples) > 40  # spread, not one fixed delay
    assert max(backoff_delay(1.0, 1000, 300.0) for _ in range(500)) <= 300.0
    assert min(backoff_delay(1.0, 1000, 300.0) for _ in range(500)) >= 150.0
    assert backoff_delay(0.0, 5, 300.0) == 0.0


def test_backoff_is_reproducible_with_a_seed() -> None:
    random.seed(42)
    first = [backoff_delay(0.2, a, 10.0) for a in range(6)]
    random.seed(42)
    assert [backoff_delay(0.2, a, 10.0) for a in range(6)] == first


# -- retries ---------------------------------------------------------------------------------
async def test_fails_twice_then_succeeds(make_app, events) -> None:
    app = await make_app()
    calls = 0

    @app.task(name="flaky", max_retries=3, retry_delay=0.01)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError(f"attempt {calls}")
        return "finally"

    task_id = await app.submit(flaky)
    result = await app.wait_for_result(task_id, timeout=5)
    assert (result.status, result.result, result.retries, calls) == (TaskStatus.SUCCESS,
                                                                     "finally", 2, 3)
    await wait_until(lambda: "success" in events.statuses(task_id), message="success event")
    assert events.statuses(task_id) == ["pending", "running", "retrying", "running", "retrying",
                                        "running", "success"]
    retrying = [u for u in events.updates(task_id) if u["status"] == "retrying"]
    assert [u["error"] for u in retrying] == ["ConnectionError: attempt 1",
                                              "ConnectionError: attempt 2"]
    assert [u["retries"] for u in retrying] == [1, 2]
    assert await app.list_dead_letters() == []


async def test_retry_delays_grow_exponentially(make_app, events) -> None:
    """Each retry waits at least half of retry_delay * 2**attempt (equal jitter)."""
    app = await make_app()

    @app.task(name="always_fails", max_retries=3, retry_delay=0.04)
    async def always_fails() -> None:
        raise RuntimeError("no")

    task_id = await app.submit(always_fails)
    assert (await app.wait_for_result(task_id, timeout=10)).status is TaskStatus.FAILED
    await wait_until(lambda: "failed" in events.statuses(task_id), message="failed event")
    retrying = [u for u in events.updates(task_id) if u["status"] == "retrying"]
    assert len(retrying) == 3
    for attempt, update in enumerate(retrying):
        waited = (_dt(update["next_retry_at"]) - _dt(update["started_at"])).total_seconds()
        assert waited >= 0.04 * 2 ** attempt / 2, (attempt, waited)
    runs = [u for u in events.updates(task_id) if u["status"] == "running"]
    for update, next_run in zip(retrying, runs[1:], strict=True):
        assert _dt(next_run["started_at"]) >= _dt(update["next_retry_at"])


async def test_a_waiting_retry_holds_no_worker_slot(make_app) -> None:
    app = await make_app(io_workers=1)

    @app.task(name="slow_retry", max_retries=1, retry_delay=60.0)
    async def slow_retry() -> None:
        raise RuntimeError("later")

    @app.task(name="quick")
    async def quick(n: int) -> int:
        return n

    retrying = await app.submit(slow_retry)
    await wait_until(lambda: _status(app, retrying, TaskStatus.RETRYING), message="retrying")
    ids = [await app.submit(quick, n) for n in range(5)]
    results = [await app.wait_for_result(i, timeout=5) for i in ids]
    assert [r.result for r in results] == list(range(5))
    record = await app.get_result(retrying)
    assert record.status is TaskStatus.RETRYING and record.next_retry_at is not None
    assert (await app.broker.stats())["delayed"] == 1
    assert await app.cancel(retrying) is True  # a delayed retry can be cancelled too
    assert (await app.get_result(retrying)).status is TaskStatus.CANCELLED


async def _status(app: Flowrra, task_id: str, status: TaskStatus) -> bool:
    record = await app.get_result(task_id)
    return record is not None and record.status is status


async def test_final_failure_keeps_message_and_traceback(make_app) -> None:
    app = await make_app()

    @app.task(name="broken", max_retries=2, retry_delay=0.01)
    async def broken(x: int) -> None:
        raise ValueError(f"bad value {x}")

    task_id = await app.submit(broken, 7)
    result = await app.wait_for_result(task_id, timeout=5)
    assert result.status is TaskStatus.FAILED and not result.is_success and result.is_complete
    assert result.error == "ValueError: bad value 7"
    assert result.retries == 2
    assert "Traceback" in result.traceback and "in broken" in result.traceback
    assert "ValueError: bad value 7" in result.traceback
    assert result.finished_at is not None
    assert result.to_dict["traceback"] == result.traceback


async def test_zero_retries_fails_at_once(make_app) -> None:
    app = await make_app()
    calls = 0

    @app.task(name="once", max_retries=0)
    async def once() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("x")

    result = await app.wait_for_result(await app.submit(once), timeout=5)
    assert (result.status, result.retries, calls) == (TaskStatus.FAILED, 0, 1)


async def test_dead_letters_list_retry_and_purge(make_app) -> None:
    app = await make_app()
    healthy = False

    @app.task(name="fragile", max_retries=1, retry_delay=0.01)
    async def fragile(n: int) -> int:
        if not healthy:
            raise OSError(f"disk {n} gone")
        return n

    ids = [await app.submit(fragile, n) for n in range(3)]
    for task_id in ids:
        assert (await app.wait_for_result(task_id, timeout=5)).status is TaskStatus.FAILED
    letters = await app.list_dead_letters()
    assert {letter.task_id for letter in letters} == set(ids)
    assert [letter.task_id for letter in letters] == [
        r.task_id for r in sorted([await app.get_result(i) for i in ids],
                                  key=lambda r: r.finished_at, reverse=True)]
    assert all(letter.task_name == "fragile" and "disk" in letter.error for letter in letters)
    assert (await app.get_result(ids[0])).dead_lettered is True
    assert len(await app.list_dead_letters(limit=1)) == 1
    assert len(await app.list_dead_letters(limit=5, offset=2)) == 1

    healthy = True
    assert await app.retry(ids[0]) is True
    result = await app.wait_for_result(ids[0], timeout=5)
    assert (result.status, result.result, result.retries) == (TaskStatus.SUCCESS, 0, 0)
    assert result.args == (0,)
    assert ids[0] not in {letter.task_id for letter in await app.list_dead_letters()}

    assert await app.purge_dead_letters(ids[1]) == 1
    assert await app.purge_dead_letters(ids[1]) == 0
    assert [letter.task_id for letter in await app.list_dead_letters()] == [ids[2]]
    assert await app.purge_dead_letters() == 1
    assert await app.list_dead_letters() == []


async def test_retry_of_unknown_or_successful_task_is_refused(app: Flowrra) -> None:
    @app.task(name="ok")
    async def ok() -> int:
        return 1

    task_id = await app.submit(ok)
    await app.wait_for_result(task_id, timeout=5)
    assert await app.retry(task_id) is False
    assert await app.retry("unknown-id") is False


async def test_dead_letters_are_bounded(make_app) -> None:
    app = await make_app(broker=InMemoryBroker(max_dead_letters=2), max_retries=0)

    @app.task(name="nope")
    async def nope(n: int) -> None:
        raise RuntimeError(str(n))

    ids = [await app.submit(nope, n) for n in range(4)]
    for task_id in ids:
        await app.wait_for_result(task_id, timeout=5)
    assert [letter.task_id for letter in await app.list_dead_letters()] == [ids[3], ids[2]]


# -- time limits -----------------------------------------------------------------------------
async def test_time_limit_fails_the_task(make_app) -> None:
    app = await make_app(io_workers=1)
    interrupted = asyncio.Event()

    @app.task(name="sleepy", timeout=0.2, max_retries=0)
    async def sleepy() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            interrupted.set()

    @app.task(name="after")
    async def after() -> str:
        return "ran"

    result = await app.wait_for_result(await app.submit(sleepy), timeout=5)
    assert result.status is TaskStatus.FAILED
    assert "time limit" in result.error and "0.2s" in result.error
    assert interrupted.is_set()
    assert (await app.wait_for_result(await app.submit(after), timeout=5)).result == "ran"


async def test_time_limit_then_retry(make_app) -> None:
    app = await make_app()
    calls = 0

    @app.task(name="slow_first", timeout=0.2, max_retries=2, retry_delay=0.01)
    async def slow_first() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()
        return calls

    result = await app.wait_for_result(await app.submit(slow_first), timeout=5)
    assert (result.status, result.result, result.retries) == (TaskStatus.SUCCESS, 2, 1)


async def test_default_time_limit_from_config(make_app) -> None:
    app = await make_app(task_timeout=0.2, max_retries=0)

    @app.task(name="forever")
    async def forever() -> None:
        await asyncio.Event().wait()

    result = await app.wait_for_result(await app.submit(forever), timeout=5)
    assert result.status is TaskStatus.FAILED and "0.2s" in result.error


async def test_task_that_swallows_its_time_limit_does_not_break_the_worker(make_app) -> None:
    """A task that catches the interruption still counts as over time, and the runner is sound."""
    app = await make_app(io_workers=1)

    @app.task(name="stubborn", timeout=0.1, max_retries=0)
    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "ignored the limit"
        return "unreachable"

    @app.task(name="probe")
    async def probe() -> int:
        # The runner must not carry a stale cancellation request into later tasks (on
        # Python 3.11 it would turn the next internal timeout into a fatal cancellation).
        task = asyncio.current_task()
        return task.cancelling() if task is not None else 0

    result = await app.wait_for_result(await app.submit(stubborn), timeout=5)
    assert result.status is TaskStatus.FAILED and "time limit" in result.error
    assert (await app.wait_for_result(await app.submit(probe), timeout=5)).result == 0


async def test_results_are_bounded_in_memory(make_app) -> None:
    backend = InMemoryBackend(max_results=5)
    app = await make_app(backend=backend)

    @app.task(name="n")
    async def n(i: int) -> int:
        return i

    ids = []
    for i in range(20):
        ids.append(await app.submit(n, i))
        assert (await app.wait_for_result(ids[-1], timeout=5)).result == i
        assert sum((await backend.count_by_status()).values()) <= 5
    assert [await app.get_result(i) for i in ids[:15]] == [None] * 15
    assert [(await app.get_result(i)).result for i in ids[15:]] == list(range(15, 20))
    assert len(await backend.list_by_status("success")) == 5


async def test_results_expire_with_ttl(make_app) -> None:
    backend = InMemoryBackend(ttl=0.05)
    app = await make_app(backend=backend)

    @app.task(name="n")
    async def n() -> int:
        return 1

    task_id = await app.submit(n)
    assert (await app.wait_for_result(task_id, timeout=5)).result == 1

    async def gone() -> bool:
        return await app.get_result(task_id) is None

    await wait_until(gone, timeout=5, message="record to expire")
    assert await backend.list_by_status("success") == []


def test_in_memory_backend_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="max_results"):
        InMemoryBackend(max_results=0)


class SlowReplyBroker(InMemoryBroker):
    """An in-memory broker whose dead-letter retry reply takes a network round trip."""

    async def retry_dead_letter(self, task_id: str):
        task = await super().retry_dead_letter(task_id)
        await asyncio.sleep(0.05)  # the task is already claimable while the reply travels
        return task


async def test_retry_never_overwrites_a_fast_workers_result(make_app) -> None:
    """The retried task may finish before the broker's reply arrives; its result must stand."""
    app = await make_app(broker=SlowReplyBroker(), io_workers=1)
    healthy = False

    @app.task(name="quick_retry", max_retries=0)
    async def quick_retry() -> str:
        if not healthy:
            raise RuntimeError("first time")
        return "second time"

    task_id = await app.submit(quick_retry)
    assert (await app.wait_for_result(task_id, timeout=5)).status is TaskStatus.FAILED
    healthy = True
    assert await app.retry(task_id) is True
    result = await app.wait_for_result(task_id, timeout=5)
    assert (result.status, result.result) == (TaskStatus.SUCCESS, "second time")
    assert (await app.get_result(task_id)).status is TaskStatus.SUCCESS
