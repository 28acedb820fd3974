"""Task registration: names, options and the checks that must fail at decoration time."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from flowrra.exceptions import RegistrationError, TaskNotFoundError

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

#: Attribute set on a decorated function so ``submit(fn)`` finds its task name.
TASK_ATTR = "__flowrra_task__"


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    name: str
    func: Callable[..., Any]
    cpu_bound: bool = False
    max_retries: int = 3
    retry_delay: float = 1.0
    timeout: float | None = None
    priority: int = 0
    queue: str = "default"

    # 0.1.8's get(name) returned the function itself; these keep its attribute names
    # and its callability working on the definition we return instead.
    @property
    def task_name(self) -> str:
        return self.name

    def __getattr__(self, attr: str) -> Any:
        # Only reached on a miss: a class's __name__/__qualname__ are not instance
        # attributes, so these resolve to the function's, as 0.1.8's get() gave.
        if attr in ("__name__", "__qualname__"):
            return getattr(self.func, attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly (not through the queue), as 0.1.8 allowed."""
        return self.func(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cpu_bound": self.cpu_bound,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "priority": self.priority,
            "queue": self.queue,
            "module": self.func.__module__,
            "doc": inspect.getdoc(self.func),
            "signature": _signature(self.func),
        }


def _signature(func: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(func))
    except (TypeError, ValueError):
        return "(...)"


def _check_function(func: Callable[..., Any], cpu_bound: bool, strict: bool = True) -> None:
    if not callable(func):
        raise RegistrationError(f"@task must decorate a function, got {func!r}")
    is_async = inspect.iscoroutinefunction(func)
    label = getattr(func, "__qualname__", repr(func))
    if cpu_bound and is_async:
        raise RegistrationError(
            f"Task {label!r} is cpu_bound=True but is 'async def'. CPU-bound tasks run in "
            "worker processes: make it a plain 'def', or drop cpu_bound=True."
        )
    if not cpu_bound and not is_async:
        raise RegistrationError(
            f"Task {label!r} is a plain 'def'. I/O tasks must be 'async def'; for blocking "
            "or CPU-heavy code use @app.task(cpu_bound=True)."
        )
    if cpu_bound:
        qualname = getattr(func, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname or not getattr(func, "__module__", None):
            message = (f"CPU-bound task {label!r} cannot be pickled by reference: define it at "
                       "the top level of an importable module (not inside a function, not a "
                       "lambda).")
            if strict:
                raise RegistrationError(message)
            logger.warning("%s Registered anyway (strict_cpu_checks=False); running it in a "
                           "worker process will fail.", message)


def _label(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """True for one function, or the same definition imported twice under two module paths.

    A script run as ``__main__`` that is also imported as ``tasks`` defines each task
    twice; both copies come from the same line of the same file and may share a name.
    """
    if a is b:
        return True
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return (code_a is not None and code_b is not None
            and a.__qualname__ == b.__qualname__
            and os.path.realpath(code_a.co_filename) == os.path.realpath(code_b.co_filename)
            and code_a.co_firstlineno == code_b.co_firstlineno)


def _set_compat_attributes(func: Callable[..., Any], definition: TaskDefinition) -> None:
    """Set the attributes 0.1.8 put on decorated functions, for code that reads them."""
    for attr, value in (("task_name", definition.name), ("cpu_bound", definition.cpu_bound),
                        ("max_retries", definition.max_retries),
                        ("retry_delay", definition.retry_delay)):
        try:
            setattr(func, attr, value)
        except (AttributeError, TypeError):  # e.g. a builtin or a slotted callable
            pass


class TaskRegistry:
    """Maps task names to definitions; one registry per :class:`~flowrra.Flowrra` app.

    ``strict_cpu_checks=False`` (0.1.8 option) registers a CPU task that cannot be
    pickled by reference with a warning instead of refusing it.
    """

    def __init__(self, strict_cpu_checks: bool = True) -> None:
        self._tasks: dict[str, TaskDefinition] = {}
        self.strict_cpu_checks = strict_cpu_checks

    def task(
        self,
        name: str | None = None,
        cpu_bound: bool = False,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        priority: int = 0,
        queue: str | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function and return it unchanged (callable as before)."""
        if max_retries < 0 or retry_delay < 0:
            raise RegistrationError("max_retries and retry_delay must be zero or more")
        if timeout is not None and timeout <= 0:
            raise RegistrationError(f"timeout must be greater than zero, got {timeout!r}")

        def decorator(func: F) -> F:
            _check_function(func, cpu_bound, self.strict_cpu_checks)
            task_name = name or func.__name__
            existing = self._tasks.get(task_name)
            if existing is not None and not _same_function(existing.func, func):
                raise RegistrationError(
                    f"Task name {task_name!r} is already registered to {_label(existing.func)}; "
                    f"cannot register {_label(func)} under the same name. Pass a unique "
                    f"name=... to @task (e.g. @app.task(name={_label(func)!r}))."
                )
            definition = TaskDefinition(
                name=task_name, func=func, cpu_bound=cpu_bound, max_retries=max_retries,
                retry_delay=retry_delay, timeout=timeout, priority=priority,
                queue=queue or ("cpu" if cpu_bound else "default"),
            )
            self._tasks[task_name] = definition
            setattr(func, TASK_ATTR, task_name)
            _set_compat_attributes(func, definition)
            return func

        return decorator

    def register(self, definition: TaskDefinition) -> None:
        self._tasks[definition.name] = definition

    def get(self, name: str) -> TaskDefinition | None:
        return self._tasks.get(name)

    def get_or_raise(self, name: str) -> TaskDefinition:
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotFoundError(name) from None

    def resolve_name(self, task_or_name: str | Callable[..., Any]) -> str:
        """Accept a task name or a decorated function and return the registered name."""
        if isinstance(task_or_name, str):
            name = task_or_name
        else:
            name = getattr(task_or_name, TASK_ATTR, None) or getattr(
                task_or_name, "__name__", repr(task_or_name))
        if name not in self._tasks:
            raise TaskNotFoundError(name)
        return name

    def lookup(self, task_or_name: str | Callable[..., Any]) -> TaskDefinition:
        """The definition for a name or a decorated function; TaskNotFoundError otherwise."""
        if isinstance(task_or_name, TaskDefinition):  # what get(name) returns
            task_or_name = task_or_name.name
        key = task_or_name if type(task_or_name) is str else getattr(task_or_name, TASK_ATTR, None)
        definition = self._tasks.get(key) if key is not None else None  # type: ignore[arg-type]
        if definition is None:
            return self.get_or_raise(self.resolve_name(task_or_name))
        return definition

    def list_tasks(self) -> list[str]:
        """Names in registration order, as in flowrra 0.1.8."""
        return list(self._tasks)

    def definitions(self) -> list[TaskDefinition]:
        return list(self._tasks.values())

    def is_registered(self, name: str) -> bool:
        return name in self._tasks

    def unregister(self, name: str) -> bool:
        return self._tasks.pop(name, None) is not None

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tasks))
