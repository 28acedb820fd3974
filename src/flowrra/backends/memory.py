"""In-process result store, bounded by size (and optionally by age).

It keeps at most ``max_results`` records (default 100,000), evicting the least
recently updated first, and drops records older than ``ttl`` seconds when a TTL
is set — so memory stays flat however many tasks run. Records are stored by
reference; records still in flight are returned as copies, final ones as they are
(nothing changes a final record, so a caller should treat it as read-only).

The store holds bare records (no per-store tuples): on the hot path every extra
container object is garbage-collector work for as long as the record lives.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from flowrra.backends.base import ResultBackend, status_value
from flowrra.task import TaskResult, TaskStatus

DEFAULT_MAX_RESULTS = 100_000

_FINAL = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})


class InMemoryBackend(ResultBackend):
    schemes = ("memory",)
    local = True

    def __init__(self, *, ttl: float | None = None, max_results: int = DEFAULT_MAX_RESULTS) -> None:
        super().__init__(ttl=ttl)
        if max_results <= 0:
            raise ValueError(f"max_results must be greater than zero, got {max_results}")
        self.max_results = max_results
        self._records: OrderedDict[str, TaskResult] = OrderedDict()
        #: Last store time per id, kept only when a TTL is set.
        self._stored_at: dict[str, float] = {}

    async def store_record(self, result: TaskResult, data: dict[str, Any] | None = None) -> None:
        self.store_nowait(result)

    def store_nowait(self, result: TaskResult) -> None:
        records = self._records
        task_id = result.task_id
        if task_id in records:
            records.move_to_end(task_id)
        records[task_id] = result
        if self.ttl is not None:
            self._stored_at[task_id] = time.monotonic()
        if len(records) > self.max_results:
            evicted, _ = records.popitem(last=False)
            self._stored_at.pop(evicted, None)
        if self._waiters and result.status in _FINAL:
            self._notify(result)

    def _live(self, task_id: str) -> TaskResult | None:
        record = self._records.get(task_id)
        if record is not None and self.ttl is not None and self._expired(task_id):
            return None
        return record

    async def get(self, task_id: str) -> TaskResult | None:
        record = self._live(task_id)
        if record is None:
            return None
        return record if record.status in _FINAL else record.copy()

    def final_nowait(self, task_id: str) -> TaskResult | None:
        record = self._live(task_id)
        return record if record is not None and record.status in _FINAL else None

    async def wait_for(self, task_id: str, timeout: float | None = None) -> TaskResult:
        record = self.final_nowait(task_id)
        if record is not None:
            return record
        return await super().wait_for(task_id, timeout)

    async def delete(self, task_id: str) -> bool:
        self._stored_at.pop(task_id, None)
        return self._records.pop(task_id, None) is not None

    async def clear(self) -> int:
        removed = len(self)
        self._records.clear()
        self._stored_at.clear()
        return removed

    def __len__(self) -> int:
        self._evict_expired()
        return len(self._records)

    def _expired(self, task_id: str) -> bool:
        stored_at = self._stored_at.get(task_id)
        return (self.ttl is not None and stored_at is not None
                and time.monotonic() - stored_at > self.ttl)

    def _evict_expired(self) -> None:
        if self.ttl is None:
            return
        records = self._records
        while records:
            task_id = next(iter(records))
            if not self._expired(task_id):
                break
            del records[task_id]
            self._stored_at.pop(task_id, None)

    async def list_by_status(self, status: TaskStatus | str, limit: int | None = None,
                             offset: int = 0) -> list[TaskResult]:
        wanted = status_value(status)
        self._evict_expired()
        out: list[TaskResult] = []
        skipped = 0
        for record in reversed(self._records.values()):
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
        for record in self._records.values():
            counts[record.status.value] += 1
        return counts
