"""In-process result store, bounded by size (and optionally by age).

It keeps at most ``max_results`` records (default 10,000), evicting the least
recently updated first, and drops records older than ``ttl`` seconds when a TTL
is set — so memory stays flat however many tasks run. Records are stored by
reference and returned as copies, so callers can never alter stored state.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from flowrra.backends.base import ResultBackend, status_value
from flowrra.task import TaskResult, TaskStatus

DEFAULT_MAX_RESULTS = 10_000


class InMemoryBackend(ResultBackend):
    schemes = ("memory",)

    def __init__(self, *, ttl: float | None = None, max_results: int = DEFAULT_MAX_RESULTS) -> None:
        super().__init__(ttl=ttl)
        if max_results <= 0:
            raise ValueError(f"max_results must be greater than zero, got {max_results}")
        self.max_results = max_results
        self._records: OrderedDict[str, tuple[TaskResult, float]] = OrderedDict()

    async def store(self, result: TaskResult) -> None:
        records = self._records
        task_id = result.task_id
        records[task_id] = (result, time.monotonic())
        records.move_to_end(task_id)
        if len(records) > self.max_results:
            records.popitem(last=False)
        if result.status in _FINAL:
            self._notify(result)

    async def get(self, task_id: str) -> TaskResult | None:
        entry = self._records.get(task_id)
        if entry is None or self._expired(entry[1]):
            return None
        return entry[0].copy()

    async def wait_for(self, task_id: str, timeout: float | None = None) -> TaskResult:
        entry = self._records.get(task_id)
        if entry is not None and entry[0].status in _FINAL:
            return entry[0].copy()
        return await super().wait_for(task_id, timeout)

    async def delete(self, task_id: str) -> bool:
        return self._records.pop(task_id, None) is not None

    async def clear(self) -> None:
        self._records.clear()

    def _expired(self, stored_at: float) -> bool:
        return self.ttl is not None and time.monotonic() - stored_at > self.ttl

    def _evict_expired(self) -> None:
        if self.ttl is None:
            return
        records = self._records
        while records:
            task_id, (_, stored_at) = next(iter(records.items()))
            if not self._expired(stored_at):
                break
            del records[task_id]

    async def list_by_status(self, status: TaskStatus | str, limit: int | None = None,
                             offset: int = 0) -> list[TaskResult]:
        wanted = status_value(status)
        self._evict_expired()
        out: list[TaskResult] = []
        skipped = 0
        for record, _ in reversed(self._records.values()):
            if record.status.value != wanted:
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(record.copy())
            if limit is not None and len(out) >= limit:
                break
        return out

    async def count_by_status(self) -> dict[str, int]:
        self._evict_expired()
        counts = {s.value: 0 for s in TaskStatus}
        for record, _ in self._records.values():
            counts[record.status.value] += 1
        return counts


_FINAL = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})
