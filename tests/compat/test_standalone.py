"""0.1.8's documented standalone classes, used with 0.1.8's constructors and methods."""

from __future__ import annotations

import logging

import pytest

from flowrra import CPUExecutor, IOExecutor, Task, TaskNotFoundError, TaskRegistry, TaskStatus
from flowrra.exceptions import TaskTimeoutError
from tests.compat import cpu_tasks


async def test_io_executor_runs_an_async_task_without_an_app() -> None:
    executor = IOExecutor()

    @executor.task(max_retries=1)
    async def add(a: int, b: int) -> int:
        return a + b

    async with executor:
        assert executor.is_running
        task_id = await executor.submit(add, 2, 3, priority=1)
        result = await executor.wait_for_result(task_id, timeout=10)
        assert result.status is TaskStatus.SUCCESS and result.result == 5
        assert (await executor.get_result(task_id)).result == 5
        assert await executor.results.get(task_id) is not None
    assert not executor.is_running


async def test_cpu_executor_runs_without_redis() -> None:
    executor = CPUExecutor()
    executor.task()(cpu_tasks.cpu_square)
    await executor.start()
    try:
        task_id = await executor.submit("cpu_square", 12)
        result = await executor.wait_for_result(task_id, timeout=30)
        assert result.status is TaskStatus.SUCCESS and result.result == 144
    finally:
        await executor.stop(wait=True, timeout=30.0)


async def test_executor_takes_a_shared_registry() -> None:
    registry = TaskRegistry()

    @registry.task()
    async def echo(x: int) -> int:
        return x

    executor = IOExecutor(None, registry)
    assert executor.registry is registry
    async with executor:
        task_id = await executor.submit(registry.get("echo"), 7)
        assert (await executor.wait_for_result(task_id, timeout=10)).result == 7


def test_registry_sets_018_attributes_on_functions() -> None:
    registry = TaskRegistry()

    @registry.task(name="b.custom", cpu_bound=False, max_retries=7, retry_delay=0.5)
    async def b() -> None: ...

    assert (b.task_name, b.cpu_bound, b.max_retries, b.retry_delay) == ("b.custom", False, 7, 0.5)
    definition = registry.get("b.custom")
    assert (definition.task_name, definition.max_retries, definition.retry_delay) == (
        "b.custom", 7, 0.5)
    assert definition.__name__ == "b" and definition.__qualname__ == b.__qualname__
    assert definition.cpu_bound is False


def test_registry_definition_is_callable() -> None:
    registry = TaskRegistry()
    registry.task(cpu_bound=True)(cpu_tasks.cpu_square)
    assert registry.get("cpu_square")(4) == 16


def test_strict_cpu_checks_false_registers_with_a_warning(caplog) -> None:
    registry = TaskRegistry(strict_cpu_checks=False)

    def local_cpu(x: int) -> int:
        return x

    with caplog.at_level(logging.WARNING, logger="flowrra.registry"):
        registry.task(cpu_bound=True)(local_cpu)
    assert "local_cpu" in registry and "pickled" in caplog.text


def test_registry_lookup_methods() -> None:
    registry = TaskRegistry()

    @registry.task()
    async def one() -> None: ...

    assert registry.is_registered("one") and "one" in registry and len(registry) == 1
    assert registry.list_tasks() == ["one"]
    assert registry.get_or_raise("one").func is one
    with pytest.raises(TaskNotFoundError) as info:
        registry.get_or_raise("zzz")
    assert info.value.task_name == "zzz" and str(info.value) == "Task 'zzz' not registered"
    assert registry.get("zzz") is None
    assert registry.unregister("one") is True and registry.unregister("one") is False


def test_exception_attributes() -> None:
    exc = TaskTimeoutError("tid", 5.0)
    assert (exc.task_id, exc.timeout, str(exc)) == ("tid", 5.0, "Task 'tid' did not complete within 5.0s")
    assert TaskNotFoundError("foo").name == "foo"


def test_task_orders_by_priority_only() -> None:
    low, high = Task(id="a", name="z", priority=1), Task(id="b", name="a", priority=5)
    assert low < high and low <= high and high > low and high >= low
    assert [t.priority for t in sorted([high, low])] == [1, 5]
    assert Task(id="a", name="z", priority=1) == low and low != high


async def test_executor_takes_a_config_and_a_backend_url(tmp_path) -> None:
    from flowrra import Config
    from flowrra.backends.sqlite import SQLiteBackend

    executor = IOExecutor(Config(), backend=f"sqlite:///{tmp_path / 'r.db'}")
    assert isinstance(executor.results, SQLiteBackend)

    @executor.task()
    async def hello() -> str:
        return "hi"

    async with executor:
        task_id = await executor.submit("hello")
        assert (await executor.wait_for_result(task_id, timeout=10)).result == "hi"
    assert len(executor.results) == 1
