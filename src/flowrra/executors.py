"""Standalone executors (the 0.1.8 API): ``IOExecutor`` and ``CPUExecutor``.

0.1.8 users could run tasks with an executor alone, without a ``Flowrra`` app.
These classes keep that working as thin facades: each owns a private
:class:`~flowrra.Flowrra` app built from the given config, registry and backend
and delegates every call to it, so there is one execution engine, not two. The
facade only registers tasks of its own kind (``async def`` for I/O, plain
``def`` for CPU). CPU results travel back through the app's own result store,
so, unlike 0.1.8, ``CPUExecutor`` needs no Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowrra.app import Flowrra, TaskRef
from flowrra.backends import ResultBackend
from flowrra.config import Config
from flowrra.registry import TaskRegistry
from flowrra.task import TaskResult


class _StandaloneExecutor:
    """Shared facade; subclasses fix ``cpu_bound`` for the tasks they register."""

    cpu_bound = False

    def __init__(self, config: Config | None = None, registry: TaskRegistry | None = None,
                 backend: ResultBackend | str | None = None) -> None:
        self._app = Flowrra(config, backend=backend)
        if registry is not None:
            self._app.registry = registry
        self.config = self._app.config

    @property
    def registry(self) -> TaskRegistry:
        return self._app.registry

    @property
    def results(self) -> ResultBackend:
        """The result backend (0.1.8 name)."""
        return self._app.backend

    @property
    def app(self) -> Flowrra:
        """The private app doing the work, for code that wants the full API."""
        return self._app

    @property
    def is_running(self) -> bool:
        return self._app.is_running

    def task(self, name: str | None = None, max_retries: int = 3, retry_delay: float = 1.0,
             timeout: float | None = None, priority: int = 0,
             queue: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a task of this executor's kind; returns the function unchanged."""
        return self._app.registry.task(
            name=name, cpu_bound=self.cpu_bound, max_retries=max_retries,
            retry_delay=retry_delay, timeout=timeout, priority=priority, queue=queue)

    async def submit(self, task_func: TaskRef, *args: Any, priority: int = 0,
                     **kwargs: Any) -> str:
        """Queue a call; returns the task id. Requires :meth:`start` (or ``async with``)."""
        return await self._app.submit(task_func, *args, priority=priority, **kwargs)

    async def start(self) -> None:
        await self._app.start()

    async def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        await self._app.stop(wait=wait, timeout=timeout)

    async def get_result(self, task_id: str) -> TaskResult | None:
        return await self._app.get_result(task_id)

    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait for the final result; raises TaskTimeoutError (a TimeoutError) on timeout."""
        return await self._app.wait_for_result(task_id, timeout=timeout)

    async def __aenter__(self) -> _StandaloneExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class IOExecutor(_StandaloneExecutor):
    """Runs ``async def`` tasks on the event loop, without a ``Flowrra`` app."""

    cpu_bound = False

    def is_broker(self) -> bool:
        """True when tasks go through a shared broker rather than this process's queue."""
        return bool(self._app.broker.shared)


class CPUExecutor(_StandaloneExecutor):
    """Runs plain ``def`` tasks (defined at module level) in worker processes."""

    cpu_bound = True
