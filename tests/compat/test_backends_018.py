"""0.1.8's result-backend and broker call forms, on the memory, SQLite and Redis backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from flowrra.backends import InMemoryBackend, ResultBackend
from flowrra.backends.sqlite import SQLiteBackend
from flowrra.task import TaskResult, TaskStatus
from tests.conftest import REDIS_URL, unique


@contextlib.asynccontextmanager
async def open_backend(kind: str, tmp_path) -> AsyncIterator[ResultBackend]:
    if kind == "memory":
        backend: ResultBackend = InMemoryBackend()
    elif kind == "sqlite":
        backend = SQLiteBackend(f"sqlite:///{tmp_path / 'results.db'}")
    else:
        from flowrra.backends.redis import RedisBackend
        from tests.contracts.impl_redis import delete_prefix

        prefix = unique("compat018")
        backend = RedisBackend(REDIS_URL, key_prefix=prefix)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.close()
        if kind == "redis":
            await delete_prefix(prefix)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def kind(request) -> str:
    return request.param


async def test_store_accepts_the_018_task_id_first_form(kind, tmp_path) -> None:
    async with open_backend(kind, tmp_path) as backend:
        await backend.store("a", TaskResult("a", TaskStatus.SUCCESS, "job", result=1))
        await backend.store(task_id="b", result=TaskResult("b", TaskStatus.FAILED, "job"))
        await backend.store(TaskResult("c", TaskStatus.PENDING, "job"))  # ours
        assert (await backend.get("a")).result == 1
        assert (await backend.get("b")).status is TaskStatus.FAILED
        assert await backend.count() == 3
        with pytest.raises(ValueError):
            await backend.store("x", TaskResult("y", TaskStatus.SUCCESS, "job"))


async def test_len_counts_stored_records(kind, tmp_path) -> None:
    async with open_backend(kind, tmp_path) as backend:
        await backend.store(TaskResult("a", TaskStatus.SUCCESS, "job"))
        await backend.store(TaskResult("b", TaskStatus.SUCCESS, "job"))
        if kind == "redis":
            with pytest.raises(TypeError, match=r"await backend.count\(\)"):
                len(backend)
        else:
            assert len(backend) == 2


async def test_wait_for_takes_a_positional_timeout(kind, tmp_path) -> None:
    async with open_backend(kind, tmp_path) as backend:
        waiter = asyncio.ensure_future(backend.wait_for("w", 10))
        await backend.store("w", TaskResult("w", TaskStatus.SUCCESS, "job", result=5))
        assert (await waiter).result == 5
        with pytest.raises(TimeoutError):
            await backend.wait_for("never", 0.05)


async def test_clear_returns_the_number_removed(kind, tmp_path) -> None:
    async with open_backend(kind, tmp_path) as backend:
        for task_id in ("a", "b", "c"):
            await backend.store(TaskResult(task_id, TaskStatus.SUCCESS, "job"))
        assert await backend.clear() == 3
        assert await backend.count() == 0


async def test_018_import_paths_and_broker_size() -> None:
    from flowrra.backends.factory import get_backend
    from flowrra.brokers import BaseBroker, Broker, InMemoryBroker
    from flowrra.brokers.factory import get_broker
    from flowrra.task import Task

    assert BaseBroker is Broker
    assert isinstance(get_backend(None), InMemoryBackend)
    broker = get_broker(None)
    assert isinstance(broker, InMemoryBroker)
    await broker.connect()
    await broker.enqueue(Task(id=unique(), name="job"))
    assert await broker.size() == 1
    await broker.close()
