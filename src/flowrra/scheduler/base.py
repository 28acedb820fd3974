"""The schedule store contract shared by the memory, SQLite, PostgreSQL and MySQL stores.

Every time passed to a store comes from the scheduler's clock: stores never read
the database server's clock, so a test clock drives them all the same way.

Exactly-once firing relies on two conditional updates:

* :meth:`ScheduleStore.claim` takes a short lease on a due slot, only if the
  row still has that ``next_run_at`` and no live lease;
* :meth:`ScheduleStore.finish` advances ``next_run_at`` only if the row still
  has that slot and the caller's lease.

A scheduler that dies holding a lease loses it when the lease expires; the
next scheduler re-submits the slot under the same deterministic task id, which
the broker de-duplicates.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

from .models import ScheduledTask

__all__ = ["ScheduleStore", "SchedulerBackend"]


class ScheduleStore(ABC):
    """Persistent storage of :class:`ScheduledTask` rows."""

    kind: ClassVar[str] = "abstract"

    @abstractmethod
    async def open(self) -> None:
        """Connect and create or migrate the schema. Safe to call twice."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections. The store can be opened again later."""

    # -- definitions ---------------------------------------------------------------
    @abstractmethod
    async def insert(self, task: ScheduledTask) -> bool:
        """Insert ``task`` unless its id exists; False when it already existed."""

    @abstractmethod
    async def update(self, task: ScheduledTask, *, reschedule: bool) -> bool:
        """Overwrite the definition of ``task.id``.

        With ``reschedule`` the run state (anchor, next run, lease) is replaced
        too; otherwise it is left as stored. False when the id is unknown.
        """

    @abstractmethod
    async def get(self, schedule_id: str) -> ScheduledTask | None: ...

    @abstractmethod
    async def list(self, enabled_only: bool = False) -> list[ScheduledTask]:
        """All schedules ordered by creation time, then id."""

    @abstractmethod
    async def delete(self, schedule_id: str) -> bool: ...

    @abstractmethod
    async def set_enabled(
        self, schedule_id: str, enabled: bool, next_run_at: datetime | None, now: datetime
    ) -> bool:
        """Enable (setting ``next_run_at``, only if it was disabled) or disable.

        Returns False when the id is unknown.
        """

    # -- firing --------------------------------------------------------------------
    @abstractmethod
    async def due(self, now: datetime, limit: int) -> list[ScheduledTask]:
        """Enabled schedules with ``next_run_at <= now`` and no live lease, oldest first."""

    @abstractmethod
    async def claim(
        self, schedule_id: str, slot: datetime, owner: str, until: datetime, now: datetime
    ) -> bool:
        """Lease ``slot`` for ``owner`` until ``until``; True only for the one winner."""

    @abstractmethod
    async def finish(
        self,
        schedule_id: str,
        slot: datetime,
        owner: str,
        next_run_at: datetime | None,
        ran_at: datetime | None,
    ) -> bool:
        """Mark ``slot`` done: set the next run, drop the lease, record a run if ``ran_at``."""

    @abstractmethod
    async def release(
        self, schedule_id: str, slot: datetime, owner: str, retry_at: datetime
    ) -> bool:
        """Give a lease back after a failed submission; nobody retries before ``retry_at``."""

    @abstractmethod
    async def next_wake_time(self) -> datetime | None:
        """When the earliest enabled schedule may next be claimed."""

    @abstractmethod
    async def change_version(self) -> int:
        """A counter that grows with every change to any schedule (cheap to read)."""

    async def __aenter__(self) -> ScheduleStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


SchedulerBackend = ScheduleStore
