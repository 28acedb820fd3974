"""Task registration: the decorator's checks at decoration time, and the registry's API."""

from __future__ import annotations

import pytest

from flowrra import Flowrra, FlowrraError, TaskNotFoundError, TaskRegistry
from flowrra.exceptions import RegistrationError
from tests.core import tasks_cpu


def test_io_task_must_be_async() -> None:
    registry = TaskRegistry()

    def blocking() -> None: ...

    with pytest.raises(RegistrationError, match="async def") as info:
        registry.task()(blocking)
    assert "cpu_bound=True" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FlowrraError)
    assert len(registry) == 0


def test_cpu_task_must_be_plain_def() -> None:
    registry = TaskRegistry()

    async def coroutine() -> None: ...

    with pytest.raises(RegistrationError, match="plain 'def'"):
        registry.task(cpu_bound=True)(coroutine)
    assert len(registry) == 0


def test_cpu_task_defined_in_a_function_is_refused() -> None:
    app = Flowrra()

    def local_cpu(x: int) -> int:
        return x

    with pytest.raises(RegistrationError, match="top level of an importable module") as info:
        app.task(cpu_bound=True)(local_cpu)
    assert "local_cpu" in str(info.value)
    with pytest.raises(RegistrationError, match="pickled"):
        app.task(cpu_bound=True)(lambda x: x)
    assert len(app.registry) == 0


def test_cpu_task_at_module_level_is_accepted() -> None:
    app = Flowrra()
    func = app.task(cpu_bound=True)(tasks_cpu.square)
    assert app.registry.get_or_raise("square").cpu_bound
    assert func(7) == 49  # still callable directly


async def test_decorated_io_task_is_still_callable() -> None:
    app = Flowrra()

    @app.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    assert await double(21) == 42
    assert await app.registry.get_or_raise("double").func(1) == 2


def test_duplicate_name_refused() -> None:
    app = Flowrra()

    @app.task(name="same")
    async def first() -> None: ...

    async def second() -> None: ...

    with pytest.raises(RegistrationError, match="'same' is already registered") as info:
        app.task(name="same")(second)
    assert "unique name=" in str(info.value)
    assert app.registry.get("same").func is first


def test_registering_the_same_function_twice_is_harmless() -> None:
    registry = TaskRegistry()

    async def job() -> None: ...

    registry.task(name="job")(job)
    registry.task(name="job")(job)
    assert len(registry) == 1


def test_default_name_is_the_function_name() -> None:
    """As in flowrra 0.1.8: every process agrees on the name whatever path imported it."""
    registry = TaskRegistry()

    async def named() -> None: ...

    registry.task()(named)
    assert registry.list_tasks() == ["named"]


def test_two_functions_with_one_default_name_are_refused() -> None:
    registry = TaskRegistry()

    def make() -> object:
        async def report() -> None: ...
        return report

    async def report() -> None: ...

    registry.task()(report)
    with pytest.raises(RegistrationError) as info:
        registry.task()(make())
    message = str(info.value)
    assert "test_two_functions_with_one_default_name_are_refused.<locals>.report" in message
    assert "make.<locals>.report" in message and "name=" in message
    assert registry.get_or_raise("report").func is report


def test_same_definition_imported_under_two_paths_is_one_task() -> None:
    """``python tasks.py`` that also imports ``tasks`` defines each task twice."""
    import importlib.util

    registry = TaskRegistry()
    spec = importlib.util.find_spec("tests.core.tasks_cpu")
    assert spec is not None and spec.origin is not None
    copies = []
    for module_name in ("copy_a", "copy_b"):
        module_spec = importlib.util.spec_from_file_location(module_name, spec.origin)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        copies.append(module.square)
    registry.task(cpu_bound=True)(copies[0])
    registry.task(cpu_bound=True)(copies[1])
    assert registry.list_tasks() == ["square"]


@pytest.mark.parametrize(("options", "word"), [
    ({"max_retries": -1}, "max_retries"),
    ({"retry_delay": -1.0}, "retry_delay"),
    ({"timeout": 0}, "timeout"),
])
def test_bad_options_refused(options: dict, word: str) -> None:
    with pytest.raises(RegistrationError, match=word):
        TaskRegistry().task(**options)


def test_registry_api() -> None:
    registry = TaskRegistry()

    async def a() -> None: ...

    async def b() -> None: ...

    registry.task(name="b", max_retries=5, retry_delay=0.5, timeout=2.0, priority=3)(b)
    registry.task(name="a")(a)
    assert len(registry) == 2
    assert "a" in registry and "zzz" not in registry
    assert registry.is_registered("b") and not registry.is_registered("zzz")
    assert registry.list_tasks() == ["b", "a"]  # registration order, as in 0.1.8
    definition = registry.get("b")
    assert (definition.name, definition.func, definition.max_retries, definition.retry_delay,
            definition.timeout, definition.priority) == ("b", b, 5, 0.5, 2.0, 3)
    assert registry.get("zzz") is None
    assert registry.get_or_raise("a").func is a
    assert registry.unregister("a") is True
    assert registry.unregister("a") is False
    assert "a" not in registry and len(registry) == 1 and registry.list_tasks() == ["b"]


def test_get_or_raise_message() -> None:
    with pytest.raises(TaskNotFoundError) as info:
        TaskRegistry().get_or_raise("missing.task")
    assert str(info.value) == "Task 'missing.task' not registered"


def test_app_task_uses_executor_defaults() -> None:
    from flowrra import Config, ExecutorConfig

    app = Flowrra(Config(executor=ExecutorConfig(max_retries=7, retry_delay=0.5)))

    @app.task(name="t")
    async def t() -> None: ...

    @app.task(name="u", max_retries=0, retry_delay=2.0)
    async def u() -> None: ...

    assert (app.registry.get("t").max_retries, app.registry.get("t").retry_delay) == (7, 0.5)
    assert (app.registry.get("u").max_retries, app.registry.get("u").retry_delay) == (0, 2.0)


async def test_submit_unknown_task(make_app) -> None:
    app = await make_app()
    with pytest.raises(TaskNotFoundError) as info:
        await app.submit("no.such.task")
    assert str(info.value) == "Task 'no.such.task' not registered"

    async def unregistered() -> None: ...

    with pytest.raises(TaskNotFoundError):
        await app.submit(unregistered)
