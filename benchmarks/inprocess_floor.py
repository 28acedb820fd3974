"""How fast can *any* in-process queue go here? Two stripped-down queues vs ``asyncio.gather``.

``benchmarks/inprocess.py`` targets 1.5x ``gather``. This script measures what
that target leaves room for, with the same submit-then-await pattern and the same
interleaved best-of-N rounds, on two toy queues that are not Flowrra:

* ``bare``: one object per task, one FIFO, a dict of results, float timestamps;
  no priorities, no leases, no record updates. A lower bound on the cost of
  any queue that hands a task to a runner and a result to a waiter.
* ``kept``: the same plus only the bookkeeping Flowrra's guarantees need: a
  separate message and record, priority FIFOs, a lease per claimed task, UTC
  ``datetime`` stamps, and "most recently updated" order of the records.
* ``shaped``: ``kept`` with the shape of Flowrra's public API: ``await submit``,
  32-hex-digit string ids, and the real ``Task`` and ``TaskResult`` classes
  (all their fields filled in), still with none of Flowrra's layers.

    python benchmarks/inprocess_floor.py [--tasks 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import time
from collections import OrderedDict, deque
from datetime import UTC, datetime
from typing import Any

from flowrra.task import Task, TaskResult, TaskStatus

_PREFIX = "feedfacecafebeef"


async def noop() -> None:
    return None


class _Job:
    __slots__ = ("args", "done_at", "id", "result", "started_at", "status", "submitted_at")

    def __init__(self, job_id: int, args: tuple[Any, ...]) -> None:
        self.id, self.args, self.status = job_id, args, "pending"
        self.submitted_at = time.time()


class _Record:
    __slots__ = ("finished_at", "id", "priority", "result", "started_at", "status",
                 "submitted_at", "worker")

    def __init__(self, job_id: int, priority: int) -> None:
        self.id, self.status, self.priority = job_id, "pending", priority
        self.submitted_at = datetime.now(UTC)


class _Message:
    __slots__ = ("args", "id", "lease", "priority", "record")

    def __init__(self, job_id: int, args: tuple[Any, ...], priority: int, record: _Record) -> None:
        self.id, self.args, self.priority, self.record = job_id, args, priority, record


class ToyQueue:
    """Submit, run on ``runners`` coroutines, and wait; ``kept`` adds Flowrra's bookkeeping."""

    def __init__(self, kept: bool, shaped: bool = False) -> None:
        self.kept = kept or shaped
        self.shaped = shaped
        self.ids = itertools.count()
        self.ready: dict[int, deque[Any]] = {}
        self.records: OrderedDict[int, Any] = OrderedDict()
        self.leases: dict[int, Any] = {}
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.wakeup: asyncio.Future[None] | None = None

    def submit(self, *args: Any, priority: int = 0) -> int:
        job_id = next(self.ids)
        if self.kept:
            record = _Record(job_id, priority)
            item: Any = _Message(job_id, args, priority, record)
        else:
            item = record = _Job(job_id, args)
        self._queue(job_id, record, item, priority)
        return job_id

    async def submit_shaped(self, *args: Any, priority: int = 0) -> str:
        job_id = _PREFIX + hex(next(self.ids) | 1 << 63)[2:]  # as flowrra.app._new_id
        now = datetime.now(UTC)
        message = Task(job_id, "noop", args, {}, 3, 1.0, 0, priority, False, None, "default", now)
        record = TaskResult(job_id, TaskStatus.PENDING, "noop", None, None, now, None, None, 0,
                            args, {}, None, priority, "default")
        message.record = record
        self._queue(job_id, record, message, priority)
        return job_id

    def _queue(self, job_id: Any, record: Any, item: Any, priority: int) -> None:
        self.records[job_id] = record
        if len(self.records) > 100_000:
            self.records.popitem(last=False)
        self.ready.setdefault(priority, deque()).append(item)
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def _claim(self) -> Any:
        for priority in sorted(self.ready) if self.kept else self.ready:
            fifo = self.ready[priority]
            if fifo:
                return fifo.popleft()
        return None

    async def runner(self) -> None:
        while True:
            item = self._claim()
            if item is None:
                self.wakeup = asyncio.get_running_loop().create_future()
                await self.wakeup
                continue
            if self.kept:
                await self._run_kept(item)
            else:
                item.status, item.started_at = "running", time.time()
                item.result = await noop(*item.args)
                item.status, item.done_at = "success", time.time()
                self._notify(item.id, item)

    async def _run_kept(self, message: Any) -> None:
        if self.shaped:
            message.receipt = time.monotonic() + 30.0
        else:
            message.lease = time.monotonic() + 30.0
        self.leases[message.id] = message
        record = message.record
        record.status, record.started_at, record.worker = "running", datetime.now(UTC), "w"
        self.records.move_to_end(message.id)
        record.result = await noop(*message.args)
        record.status = TaskStatus.SUCCESS if self.shaped else "success"
        record.finished_at = datetime.now(UTC)
        self.records.move_to_end(message.id)
        self._notify(message.id, record)
        del self.leases[message.id]

    def _notify(self, job_id: int, record: Any) -> None:
        future = self.waiters.pop(job_id, None)
        if future is not None:
            future.set_result(record)

    async def wait(self, job_id: int) -> Any:
        record = self.records.get(job_id)
        if record is not None and record.status in ("success", TaskStatus.SUCCESS):
            return record
        future = self.waiters[job_id] = asyncio.get_running_loop().create_future()
        return await future


async def timed_queue(queue: ToyQueue, n: int) -> float:
    start = time.perf_counter()
    if queue.shaped:
        ids: list[Any] = [await queue.submit_shaped() for _ in range(n)]
    else:
        ids = [queue.submit() for _ in range(n)]
    for job_id in ids:
        await queue.wait(job_id)
    return time.perf_counter() - start


async def timed_gather(n: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(noop() for _ in range(n)))
    return time.perf_counter() - start


async def measure(kind: str, tasks: int, rounds: int) -> tuple[float, float]:
    """Best rate of one toy queue and of ``gather``, rounds interleaved, in a fresh loop."""
    queue = ToyQueue(kept=kind != "bare", shaped=kind == "shaped")
    runners = [asyncio.create_task(queue.runner()) for _ in range(4)]
    await timed_queue(queue, 1000)  # warm-up
    best_queue = best_gather = float("inf")
    for _ in range(rounds):
        best_queue = min(best_queue, await timed_queue(queue, tasks))
        best_gather = min(best_gather, await timed_gather(tasks))
    for runner in runners:
        runner.cancel()
    return tasks / best_queue, tasks / best_gather


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for kind in ("bare", "kept", "shaped"):
        rate, base = asyncio.run(measure(kind, args.tasks, args.rounds))
        gc.collect()
        print(f"toy queue, {kind:<6}: {rate:>9,.0f} tasks/s vs gather {base:>9,.0f}/s "
              f"= {rate / base:.2f}x")


if __name__ == "__main__":
    main()
