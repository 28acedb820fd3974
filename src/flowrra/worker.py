"""The worker: claims tasks, runs them, records every state, and acknowledges last.

Order of operations for one task (the delivery guarantee rests on it):
``dequeue`` (claimed under a lease) -> store *running* -> run -> store the final
record -> ``ack``. A crash anywhere before ``ack`` leaves the task leased; its
lease expires and another worker runs it again (at-least-once). Retries are
re-queued in the broker with an ``eta``, so a waiting retry holds no runner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import traceback
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowrra.exceptions import SerializationError
from flowrra.runners import BaseExecutor, CPURunners, Interrupted, IORunners, Runner
from flowrra.serialization import ensure_serializable
from flowrra.task import Task, TaskResult, TaskStatus

if TYPE_CHECKING:
    from flowrra.app import Flowrra

logger = logging.getLogger(__name__)


_SCALARS = frozenset({type(None), bool, int, str})


def backoff_delay(retry_delay: float, attempt: int, cap: float) -> float:
    """Exponential backoff with "equal jitter": in [d/2, d] where d = retry_delay * 2**attempt."""
    ceiling = min(cap, retry_delay * (2 ** min(attempt, 32)))
    return ceiling / 2 + random.random() * ceiling / 2


def _runner_cancelled(exc: BaseException) -> bool:
    """True if ``exc`` is a cancellation of the running asyncio task, not one a task raised."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    current = asyncio.current_task()
    return current is None or current.cancelling() > 0


class Worker:
    def __init__(self, app: Flowrra, *, io_workers: int | None = None,
                 cpu_workers: int | None = None, queues: Sequence[str] = ("default",),
                 cpu_queues: Sequence[str] = ("cpu",), worker_id: str | None = None) -> None:
        cfg = app.config.executor
        self.app = app
        self.broker = app.broker
        self.backend = app.backend
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
        self.io = IORunners(io_workers or cfg.io_workers, queues)
        self.cpu = CPURunners(cpu_workers or cfg.cpu_workers, cpu_queues)
        self.max_retry_delay = cfg.max_retry_delay
        self.processed = 0
        self.failed = 0
        self.started_at = datetime.now(UTC)
        self._heartbeat: asyncio.Task[None] | None = None
        self._running = False

    @property
    def executors(self) -> tuple[BaseExecutor, ...]:
        return (self.io, self.cpu)

    @property
    def is_running(self) -> bool:
        return self._running

    def info(self) -> dict[str, Any]:
        return {
            "id": self.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "io_workers": self.io.concurrency,
            "cpu_workers": self.cpu.concurrency,
            "queues": list(self.io.queues) + list(self.cpu.queues),
            "active": sum(r.current is not None for e in self.executors for r in e.runners),
            "processed": self.processed,
            "failed": self.failed,
            "started_at": self.started_at.isoformat(),
            "last_seen": datetime.now(UTC).isoformat(),
        }

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        await self.broker.register_worker(self.worker_id, self.info(), self._worker_ttl)
        for executor in self.executors:
            await executor.start(self)
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    @property
    def _worker_ttl(self) -> float:
        return max(3 * self._beat_interval, 5.0)

    @property
    def _beat_interval(self) -> float:
        return max(0.05, min(5.0, self.broker.visibility_timeout / 3))

    async def stop(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop claiming; let running tasks finish within ``timeout``; hand back the rest."""
        if not self._running:
            return
        for executor in self.executors:
            executor.request_stop()
        unfinished: list[Task] = []
        for executor in self.executors:
            unfinished += await executor.join(timeout if wait else 0)
        if unfinished:
            logger.warning("handing back %d unfinished task(s) to the broker", len(unfinished))
            await self._quietly(self._hand_back(unfinished))
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for executor in self.executors:
            await executor.close()
        await self._quietly(self.broker.unregister_worker(self.worker_id))
        self._running = False

    async def _hand_back(self, tasks: list[Task]) -> None:
        """Record tasks as waiting again (not running), then return them to the broker."""
        for task in tasks:
            record = self._running_record(task)
            record.status = TaskStatus.PENDING
            record.started_at = None
            record.worker = None
            await self.app._record(record)
        await self.broker.release(tasks)

    async def _quietly(self, aw: Any) -> None:
        try:
            await aw
        except Exception as exc:
            logger.warning("broker unavailable during shutdown: %s", exc)

    async def _beat(self) -> None:
        """Renew the leases of running tasks and advertise this worker, until stopped."""
        while True:
            await asyncio.sleep(self._beat_interval)
            held = [r.current for e in self.executors for r in e.runners if r.current is not None]
            try:
                if held:
                    await self.broker.extend_leases(held, self.worker_id)
                await self.broker.register_worker(self.worker_id, self.info(), self._worker_ttl)
            except Exception as exc:
                logger.warning("heartbeat failed (%s); will retry", exc)

    def cancel_running(self, task_id: str) -> bool:
        """Interrupt the task if one of this worker's runners is executing it."""
        for executor in self.executors:
            for runner in executor.runners:
                if runner.current is not None and runner.current.id == task_id:
                    runner.interrupt("cancelled")
                    return True
        return False

    # -- one task -------------------------------------------------------------------
    async def process(self, task: Task, executor: BaseExecutor, runner: Runner) -> None:
        """Run one claimed task to its next state; storage errors propagate to the runner."""
        app = self.app
        record = self._running_record(task)
        definition = app.registry.get(task.name)
        if definition is None:
            await self._give_up(task, record, f"Task '{task.name}' not registered on worker "
                                f"{self.worker_id}", None)
            return
        if task.id in app._cancelled:
            await self._finish_cancelled(task, record)
            return
        local = app.local
        if local:
            app._record_nowait(record)
        else:
            await app._record(record)
        try:
            value = await executor.call(definition, task, runner)
            if type(value) not in _SCALARS:
                ensure_serializable(value, f"The result of task '{task.name}'")
        except Interrupted as stop:
            if stop.reason == "cancelled":
                await self._finish_cancelled(task, record)
                return
            message = f"TaskTimeoutError: Task '{task.id}' exceeded its time limit of {task.timeout}s"
            await self._failed(task, record, message, None)
            return
        except SerializationError as exc:
            await self._give_up(task, record, f"SerializationError: {exc}", None)
            return
        except BaseException as exc:
            # Anything the task raises fails the task, not the runner: SystemExit, odd
            # BaseExceptions, even a CancelledError it raised itself. Only Ctrl-C and a
            # real cancellation of this runner (stop) propagate.
            if isinstance(exc, KeyboardInterrupt) or _runner_cancelled(exc):
                raise
            await self._failed(task, record, f"{type(exc).__name__}: {exc}",
                               traceback.format_exc())
            return
        record.status = TaskStatus.SUCCESS
        record.result = value
        record.finished_at = datetime.now(UTC)
        if local:
            app._record_nowait(record)
            self.broker.ack_nowait(task)
        else:
            await app._record(record)
            await self.broker.ack(task)
        self.processed += 1

    def _running_record(self, task: Task) -> TaskResult:
        record = task.record
        if record is None:  # the task came through a shared broker: build its record
            return TaskResult(
                task.id, TaskStatus.RUNNING, task.name, None, None, task.submitted_at, datetime.now(UTC),
                None, task.current_retry, task.args, task.kwargs, None, task.priority,
                task.queue, self.worker_id,
            )
        record.status = TaskStatus.RUNNING
        record.started_at = datetime.now(UTC)
        record.retries = task.current_retry
        record.worker = self.worker_id
        record.next_retry_at = None
        return record

    async def _failed(self, task: Task, record: TaskResult, error: str, tb: str | None) -> None:
        if task.current_retry >= task.max_retries:
            await self._give_up(task, record, error, tb)
            return
        delay = backoff_delay(task.retry_delay, task.current_retry, self.max_retry_delay)
        record.status = TaskStatus.RETRYING
        record.error = error
        record.traceback = tb
        record.retries = task.current_retry + 1
        record.next_retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        await self.app._record(record)
        task.current_retry += 1
        task.eta = time.time() + delay
        await self.broker.requeue(task)

    async def _give_up(self, task: Task, record: TaskResult, error: str, tb: str | None) -> None:
        """Final failure: store it, then move the task to the dead-letter list."""
        record.status = TaskStatus.FAILED
        record.error = error
        record.traceback = tb
        record.finished_at = datetime.now(UTC)
        record.dead_lettered = True
        await self.app._record(record)
        await self.broker.dead_letter(task, error)
        self.processed += 1
        self.failed += 1

    async def _finish_cancelled(self, task: Task, record: TaskResult) -> None:
        record.status = TaskStatus.CANCELLED
        record.error = "Task was cancelled"
        record.finished_at = datetime.now(UTC)
        await self.app._record(record)
        await self.broker.ack(task)
        self.app._cancelled.discard(task.id)
