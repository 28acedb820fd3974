"""Runner pools (internal to the worker): pools of runners that claim tasks from the broker and invoke them.

Each runner is one long-lived coroutine that claims a task, runs it and claims
the next, so an I/O task costs no new asyncio Task. A runner is interrupted (for
a time limit or a cancellation) by cancelling its coroutine with a reason set;
the runner then absorbs that cancellation and records the outcome. CPU-bound
tasks are sent to a process pool, ``cpu_workers`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import sys
from collections.abc import Awaitable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from flowrra.registry import TaskDefinition
from flowrra.task import Task

if TYPE_CHECKING:
    from flowrra.worker import Worker

logger = logging.getLogger(__name__)


class Interrupted(Exception):
    """A running task was stopped on purpose; ``reason`` is 'timeout' or 'cancelled'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Runner:
    """One slot of an executor; knows which task it holds so it can be interrupted."""

    __slots__ = ("current", "handle", "in_task", "reason")

    def __init__(self) -> None:
        self.current: Task | None = None
        self.handle: asyncio.Task[None] | None = None
        self.in_task = False
        self.reason: str | None = None

    def interrupt(self, reason: str) -> None:
        if self.in_task and self.reason is None and self.handle is not None:
            self.reason = reason
            self.handle.cancel()


class BaseExecutor:
    kind = "io"

    def __init__(self, concurrency: int, queues: Sequence[str]) -> None:
        if concurrency <= 0:
            raise ValueError(f"concurrency must be greater than zero, got {concurrency}")
        self.concurrency = concurrency
        self.queues = tuple(queues)
        self.runners: list[Runner] = []
        self._stopping = False
        self.worker: Worker | None = None

    @property
    def is_running(self) -> bool:
        return bool(self.runners) and not self._stopping

    async def start(self, worker: Worker) -> None:
        self.worker = worker
        self._stopping = False
        loop = asyncio.get_running_loop()
        for index in range(self.concurrency):
            runner = Runner()
            runner.handle = loop.create_task(self._run(runner), name=f"flowrra-{self.kind}-{index}")
            self.runners.append(runner)

    def request_stop(self) -> None:
        """Stop claiming new tasks; runners finish what they hold."""
        self._stopping = True

    async def join(self, timeout: float | None) -> list[Task]:
        """Wait for runners to finish; after ``timeout`` interrupt them. Returns unfinished tasks."""
        handles = [r.handle for r in self.runners if r.handle is not None]
        idle = [r.handle for r in self.runners if r.handle is not None and r.current is None]
        for handle in idle:  # waiting in dequeue: nothing to finish
            handle.cancel()
        if handles:
            _done, pending = await asyncio.wait(handles, timeout=timeout)
            unfinished = [r.current for r in self.runners
                          if r.handle in pending and r.current is not None]
            for handle in pending:
                handle.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5.0)
        else:
            unfinished = []
        self.runners.clear()
        return unfinished

    async def _run(self, runner: Runner) -> None:
        worker = self.worker
        assert worker is not None
        broker = worker.broker
        queues = self.queues
        local = broker.local
        failures = 0
        while not self._stopping:
            try:
                task = broker.dequeue_nowait(queues, worker.worker_id) if local else None
                if task is None:
                    task = await broker.dequeue(queues, worker.worker_id, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(5.0, 0.1 * 2 ** min(failures, 6))
                logger.warning("cannot claim tasks (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            if task is None:
                continue
            runner.current = task  # held from here on: stop() waits for it, never cancels it
            if self._stopping:
                # Shielded: a cancellation from stop() must not cut the hand-back short.
                await asyncio.shield(broker.release([task]))
                runner.current = None
                break
            try:
                await worker.process(task, self, runner)
            except Exception:
                # Storage or broker failure: the task is not acked, so it is delivered
                # again once its lease expires. The runner itself carries on.
                logger.exception("could not record task %s (%s); it will be redelivered",
                                 task.id, task.name)
            finally:
                runner.current = None

    async def call(self, definition: TaskDefinition, task: Task, runner: Runner) -> Any:
        """Invoke the task function; convert a deliberate interruption into :class:`Interrupted`."""
        timer = (asyncio.get_running_loop().call_later(task.timeout, runner.interrupt, "timeout")
                 if task.timeout else None)
        runner.in_task = True
        value: Any = None
        try:
            try:
                value = await self.invoke(definition, task)  # an awaitable, no extra frame
            except (Exception, asyncio.CancelledError):
                if runner.reason is None:
                    raise
        finally:
            runner.in_task = False
            reason, runner.reason = runner.reason, None
            if timer is not None:
                timer.cancel()
            if reason is not None:
                # Withdraw our cancel request, even if the task swallowed it and returned,
                # so it cannot leak into the runner's later awaits.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    current.uncancel()
        if reason is not None:
            raise Interrupted(reason)
        return value

    def invoke(self, definition: TaskDefinition, task: Task) -> Awaitable[Any]:
        """Start the call and return what to await for its value."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release executor resources (process pools)."""


class IORunners(BaseExecutor):
    """Runs ``async def`` tasks on the event loop, ``concurrency`` at a time."""

    kind = "io"

    def __init__(self, concurrency: int = 4, queues: Sequence[str] = ("default",)) -> None:
        super().__init__(concurrency, queues)

    def invoke(self, definition: TaskDefinition, task: Task) -> Awaitable[Any]:
        return definition.func(*task.args, **task.kwargs)  # type: ignore[no-any-return]


def _ignore_sigint() -> None:
    """Pool processes leave Ctrl-C to the worker, which stops them gracefully."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call_in_process(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return func(*args, **kwargs)


def start_method(func: Any) -> str:
    """The multiprocessing start method for a CPU task's pool.

    ``forkserver`` (Linux) and ``spawn`` children start clean: no inherited
    threads, locks or connections. But they import the task's module afresh, and
    for a task defined in the script being run (``__main__``) that means running
    the script's top-level code again in every child — a 0.1.8-style script with
    ``asyncio.run(main())`` and no ``if __name__ == "__main__"`` guard would start
    a second app there. Such tasks get ``fork`` on Linux, as in 0.1.8.
    """
    if not sys.platform.startswith("linux"):
        return "spawn"
    return "fork" if getattr(func, "__module__", None) == "__main__" else "forkserver"


class CPURunners(BaseExecutor):
    """Runs plain ``def`` tasks in a process pool, ``concurrency`` processes at a time.

    The pool's start method comes from :func:`start_method`. A CPU task that
    exceeds its time limit or is cancelled is reported at once; its process
    finishes the call in the background before taking new work.
    """

    kind = "cpu"

    def __init__(self, concurrency: int = 1, queues: Sequence[str] = ("cpu",)) -> None:
        super().__init__(concurrency, queues)
        #: One pool per start method; the runners bound how many tasks run at once.
        self._pools: dict[str, ProcessPoolExecutor] = {}

    def _get_pool(self, func: Any) -> ProcessPoolExecutor:
        method = start_method(func)
        pool = self._pools.get(method)
        if pool is None:
            pool = self._pools[method] = ProcessPoolExecutor(
                max_workers=self.concurrency, mp_context=multiprocessing.get_context(method),
                initializer=_ignore_sigint)
        return pool

    def invoke(self, definition: TaskDefinition, task: Task) -> Awaitable[Any]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(
            self._get_pool(definition.func), _call_in_process, definition.func, task.args,
            task.kwargs)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        loop = asyncio.get_running_loop()
        for pool in pools:
            await loop.run_in_executor(
                None, lambda pool=pool: pool.shutdown(wait=True, cancel_futures=True))
