"""In-memory schedule store: one process only, lost on exit (for tests and demos)."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from datetime import datetime

from .base import ScheduleStore
from .models import ScheduledTask, utc

__all__ = ["MemoryScheduleStore"]

_TIMES = ("run_at", "anchor_at", "next_run_at", "last_run_at", "created_at", "updated_at",
          "claim_until")
_RUN_STATE = ("anchor_at", "next_run_at", "last_run_at", "run_count", "claimed_by", "claim_until")


class MemoryScheduleStore(ScheduleStore):
    """Keeps schedules in a dict; the same semantics as the SQL stores."""

    kind = "memory"

    def __init__(self) -> None:
        self._rows: dict[str, ScheduledTask] = {}
        self._version = 0
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _bump(self) -> None:
        self._version += 1

    @staticmethod
    def _copy(task: ScheduledTask) -> ScheduledTask:
        """A private copy with every time in UTC, like the SQL stores keep them."""
        new = copy.deepcopy(task)
        for name in _TIMES:
            value = getattr(new, name)
            if value is not None:
                setattr(new, name, utc(value))
        return new

    async def insert(self, task: ScheduledTask) -> bool:
        async with self._lock:
            if task.id in self._rows:
                return False
            self._rows[task.id] = self._copy(task)
            self._bump()
            return True

    async def update(self, task: ScheduledTask, *, reschedule: bool) -> bool:
        async with self._lock:
            current = self._rows.get(task.id)
            if current is None:
                return False
            new = self._copy(task)
            new.created_at = current.created_at
            if not reschedule:
                for name in _RUN_STATE:
                    setattr(new, name, getattr(current, name))
            else:
                new.claimed_by = new.claim_until = None
            self._rows[task.id] = new
            self._bump()
            return True

    async def get(self, schedule_id: str) -> ScheduledTask | None:
        row = self._rows.get(schedule_id)
        return copy.deepcopy(row) if row else None

    async def list(self, enabled_only: bool = False) -> list[ScheduledTask]:
        rows = [r for r in self._rows.values() if r.enabled or not enabled_only]
        rows.sort(key=lambda r: (r.created_at or datetime.min, r.id))
        return [copy.deepcopy(r) for r in rows]

    async def delete(self, schedule_id: str) -> bool:
        async with self._lock:
            if self._rows.pop(schedule_id, None) is None:
                return False
            self._bump()
            return True

    async def set_enabled(
        self, schedule_id: str, enabled: bool, next_run_at: datetime | None, now: datetime
    ) -> bool:
        async with self._lock:
            row = self._rows.get(schedule_id)
            if row is None:
                return False
            if enabled and not row.enabled:
                self._rows[schedule_id] = replace(
                    row, enabled=True, next_run_at=next_run_at, claimed_by=None,
                    claim_until=None, updated_at=utc(now),
                )
            elif not enabled:
                self._rows[schedule_id] = replace(row, enabled=False, updated_at=utc(now))
            self._bump()
            return True

    @staticmethod
    def _free(row: ScheduledTask, now: datetime) -> bool:
        return row.claim_until is None or row.claim_until <= now

    async def due(self, now: datetime, limit: int) -> list[ScheduledTask]:
        now = utc(now)
        rows = [
            r for r in self._rows.values()
            if r.enabled and r.next_run_at is not None and r.next_run_at <= now
            and self._free(r, now)
        ]
        rows.sort(key=lambda r: (r.next_run_at, r.id))
        return [copy.deepcopy(r) for r in rows[:limit]]

    async def claim(
        self, schedule_id: str, slot: datetime, owner: str, until: datetime, now: datetime
    ) -> bool:
        async with self._lock:
            row = self._rows.get(schedule_id)
            if row is None or not row.enabled or row.next_run_at != utc(slot):
                return False
            if not self._free(row, utc(now)):
                return False
            row.claimed_by, row.claim_until = owner, utc(until)
            return True

    async def finish(
        self,
        schedule_id: str,
        slot: datetime,
        owner: str,
        next_run_at: datetime | None,
        ran_at: datetime | None,
    ) -> bool:
        async with self._lock:
            row = self._rows.get(schedule_id)
            if row is None or row.next_run_at != utc(slot) or row.claimed_by != owner:
                return False
            row.next_run_at = utc(next_run_at) if next_run_at else None
            if ran_at is not None:
                row.last_run_at = utc(ran_at)
                row.run_count += 1
            row.claimed_by = row.claim_until = None
            self._bump()
            return True

    async def release(
        self, schedule_id: str, slot: datetime, owner: str, retry_at: datetime
    ) -> bool:
        async with self._lock:
            row = self._rows.get(schedule_id)
            if row is None or row.next_run_at != utc(slot) or row.claimed_by != owner:
                return False
            row.claimed_by, row.claim_until = None, utc(retry_at)
            self._bump()
            return True

    async def next_wake_time(self) -> datetime | None:
        times = [
            max(r.next_run_at, r.claim_until) if r.claim_until else r.next_run_at
            for r in self._rows.values()
            if r.enabled and r.next_run_at is not None
        ]
        return min(times, default=None)

    async def change_version(self) -> int:
        return self._version
