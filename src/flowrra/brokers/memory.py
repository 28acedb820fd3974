"""In-process broker: for one process only (tasks live in this process's memory).

It is the zero-setup default and the fastest path; it says so in its name. Work
queued here is lost if the process dies — use ``sqlite:///`` or ``redis://`` for
durable delivery.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from flowrra.brokers.base import Broker, DeadLetter, retry_dead_letter_task
from flowrra.task import Task


class _Lanes:
    """One queue's waiting tasks: a FIFO per priority, the lowest priority served first.

    Cheaper than one heap of ``(priority, seq, task)`` tuples: a push is a deque
    append, a pop a popleft. While a task waits, ``task.receipt`` holds its arrival
    number, which orders equal priorities across queues.
    """

    __slots__ = ("fifos", "order")

    def __init__(self) -> None:
        self.fifos: dict[int, deque[Task]] = {}
        self.order: list[int] = []  # the priorities present, ascending

    def push(self, task: Task) -> None:
        fifo = self.fifos.get(task.priority)
        if fifo is None:
            fifo = self.fifos[task.priority] = deque()
            bisect.insort(self.order, task.priority)
        fifo.append(task)

    def head(self, live: dict[str, Task]) -> deque[Task] | None:
        """The FIFO whose first task goes next; drops entries no longer live on the way."""
        for priority in self.order:
            fifo = self.fifos[priority]
            while fifo and live.get(fifo[0].id) is not fifo[0]:
                fifo.popleft()
            if fifo:
                return fifo
        self.fifos.clear()  # all empty: forget priorities no longer used
        self.order.clear()
        return None


class InMemoryBroker(Broker):
    schemes = ("memory",)
    local = True

    def __init__(self, *, visibility_timeout: float = 30.0, max_dead_letters: int = 10_000,
                 dedupe_window: int = 100_000) -> None:
        super().__init__(visibility_timeout=visibility_timeout)
        self._ready: dict[str, _Lanes] = {}
        self._delayed: list[tuple[float, int, Task]] = []
        # Claimed tasks by id; the lease deadline (monotonic) is kept in ``task.receipt``.
        self._leases: dict[str, Task] = {}
        self._seq = itertools.count()
        self._wakeup: asyncio.Future[None] | None = None
        self._dead: OrderedDict[str, DeadLetter] = OrderedDict()
        self._max_dead = max_dead_letters
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedupe_window = dedupe_window
        self._workers: dict[str, tuple[dict[str, Any], float]] = {}
        #: The live waiting entry of each queued id. Heap entries that are not the live
        #: entry (revoked, or superseded by a re-queue of the same id) are skipped lazily.
        self._queued_ids: dict[str, Task] = {}
        self._next_lease_check = 0.0

    # -- producing ------------------------------------------------------------------
    async def enqueue(self, task: Task, *, dedupe: bool = False) -> bool:
        if dedupe:
            if self._known(task.id):
                return False
            self._seen[task.id] = None
            if len(self._seen) > self._dedupe_window:
                self._seen.popitem(last=False)
        self._push(task)
        return True

    async def is_duplicate(self, task_id: str) -> bool:
        return self._known(task_id)

    def _known(self, task_id: str) -> bool:
        return task_id in self._seen or task_id in self._queued_ids or task_id in self._leases

    def enqueue_nowait(self, task: Task) -> None:
        self._push(task)

    def _push(self, task: Task) -> None:
        self._queued_ids[task.id] = task
        if task.eta is not None and task.eta > time.time():
            heapq.heappush(self._delayed, (task.eta, next(self._seq), task))
        else:
            self._make_ready(task)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            if not wakeup.done():
                wakeup.set_result(None)

    async def revoke(self, task_id: str) -> bool:
        if task_id not in self._queued_ids:
            return False
        del self._queued_ids[task_id]
        return True

    # -- consuming ------------------------------------------------------------------
    async def dequeue(self, queues: Sequence[str], worker_id: str,
                      timeout: float = 1.0) -> Task | None:
        deadline = None
        while True:
            task = self.dequeue_nowait(queues, worker_id)
            if task is not None:
                return task
            now = time.monotonic()
            if deadline is None:
                deadline = now + timeout
            remaining = deadline - now
            if remaining <= 0:
                return None
            if self._delayed:
                remaining = min(remaining, max(0.0, self._delayed[0][0] - time.time()))
            if self._wakeup is None:
                self._wakeup = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(self._wakeup)
            except TimeoutError:
                pass

    def dequeue_nowait(self, queues: Sequence[str], worker_id: str) -> Task | None:
        task = self._pop(queues)
        if task is not None:
            task.receipt = time.monotonic() + self.visibility_timeout
            self._leases[task.id] = task
        return task

    def _pop(self, queues: Sequence[str]) -> Task | None:
        if self._delayed:
            self._promote_due()
        if self._leases:
            self._recover_expired()
        best: deque[Task] | None = None
        live = self._queued_ids
        for name in queues:
            lanes = self._ready.get(name)
            fifo = lanes.head(live) if lanes is not None else None
            if fifo is not None and (best is None or _order(fifo[0]) < _order(best[0])):
                best = fifo
        if best is None:
            return None
        task = best.popleft()
        del live[task.id]
        return task

    def _make_ready(self, task: Task) -> None:
        task.receipt = next(self._seq)
        lanes = self._ready.get(task.queue)
        if lanes is None:
            lanes = self._ready[task.queue] = _Lanes()
        lanes.push(task)

    def _is_live(self, task: Task) -> bool:
        return self._queued_ids.get(task.id) is task

    def _promote_due(self) -> None:
        now = time.time()
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            task = heapq.heappop(delayed)[2]
            if self._is_live(task):
                self._make_ready(task)

    def _recover_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_lease_check:
            return
        self._next_lease_check = now + min(1.0, self.visibility_timeout / 4)
        expired = [task for task in self._leases.values() if task.receipt <= now]
        for task in expired:
            del self._leases[task.id]
            task.eta = None
            self._push(task)

    async def ack(self, task: Task) -> None:
        self._leases.pop(task.id, None)

    def ack_nowait(self, task: Task) -> None:
        self._leases.pop(task.id, None)

    async def requeue(self, task: Task) -> None:
        self._leases.pop(task.id, None)
        self._push(task)

    async def release(self, tasks: Sequence[Task]) -> None:
        for task in tasks:
            if self._leases.pop(task.id, None) is not None:
                self._push(task)

    async def extend_leases(self, tasks: Sequence[Task], worker_id: str) -> None:
        deadline = time.monotonic() + self.visibility_timeout
        for task in tasks:
            leased = self._leases.get(task.id)
            if leased is not None:
                leased.receipt = deadline

    # -- dead letters ---------------------------------------------------------------
    async def dead_letter(self, task: Task, error: str) -> None:
        self._leases.pop(task.id, None)
        self._dead[task.id] = DeadLetter.for_task(task, error)
        self._dead.move_to_end(task.id)
        while len(self._dead) > self._max_dead:
            self._dead.popitem(last=False)

    async def list_dead_letters(self, limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        letters = list(reversed(self._dead.values()))
        return letters[offset: None if limit is None else offset + limit]

    async def retry_dead_letter(self, task_id: str) -> Task | None:
        letter = self._dead.pop(task_id, None)
        task = retry_dead_letter_task(letter) if letter else None
        if task is not None:
            self._push(task)
        return task

    async def purge_dead_letters(self, task_id: str | None = None) -> int:
        if task_id is None:
            count = len(self._dead)
            self._dead.clear()
            return count
        return 1 if self._dead.pop(task_id, None) is not None else 0

    # -- introspection ----------------------------------------------------------------
    async def stats(self) -> dict[str, int]:
        delayed = sum(1 for _, _, task in self._delayed if self._is_live(task))
        return {
            "queued": len(self._queued_ids) - delayed,
            "delayed": delayed,
            "leased": len(self._leases),
            "dead": len(self._dead),
        }

    async def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        self._workers[worker_id] = (info, time.monotonic() + ttl)

    async def unregister_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        for worker_id in [w for w, (_, exp) in self._workers.items() if exp <= now]:
            del self._workers[worker_id]
        return [info for info, _ in self._workers.values()]


def _order(task: Task) -> tuple[int, int]:
    """Which of two waiting tasks goes first: lower priority, then earlier arrival."""
    return task.priority, task.receipt
