"""The result backend protocol: one record per task id, updated on every transition.

``wait_for`` registers its waiter *before* reading the record, so a completion
that lands between the read and the wait is never missed. Implementations call
:meth:`ResultBackend._notify` whenever a record becomes final — for local stores
from ``store``, for shared stores also from their cross-process notification
listener (started by :meth:`_watch`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from flowrra.exceptions import TaskTimeoutError
from flowrra.task import TaskResult, TaskStatus


class ResultBackend(ABC):
    shared: ClassVar[bool] = False
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True when records live in this process's memory, so the ``*_nowait`` methods
    #: work (the app's in-process hot path calls them without a coroutine).
    local: ClassVar[bool] = False

    def __init__(self, *, ttl: float | None = None) -> None:
        self.ttl = ttl
        self._waiters: dict[str, list[asyncio.Future[TaskResult]]] = {}

    async def connect(self) -> None:
        """Open connections; idempotent."""

    async def close(self) -> None:
        """Release connections and fail nobody: pending waiters keep waiting until timeout."""

    async def store(self, result: TaskResult | str, data: dict[str, Any] | TaskResult | None = None,
                    *, task_id: str | None = None) -> None:
        """Save ``result`` as the task's current record: ``store(result, data=None)``.

        0.1.8's ``store(task_id, result)`` (positional or by keyword) is accepted too,
        here once for every backend; each backend implements :meth:`store_record`.
        """
        if isinstance(result, str):  # 0.1.8 positional form: store(task_id, result)
            task_id, result, data = result, data, None  # type: ignore[assignment]
        if not isinstance(result, TaskResult):
            raise TypeError(f"store() needs a TaskResult, got {type(result).__name__}")
        if task_id is not None and task_id != result.task_id:
            raise ValueError(f"store({task_id!r}, ...) was given the record of {result.task_id!r}")
        await self.store_record(result, data if isinstance(data, dict) else None)

    @abstractmethod
    async def store_record(self, result: TaskResult, data: dict[str, Any] | None = None) -> None:
        """Save ``result`` as the task's current record.

        ``data`` is ``result.to_dict`` when the caller has built it already (the app
        does, for the event); shared stores encode it instead of building it again.
        """

    async def count(self) -> int:
        """Number of stored records (every status)."""
        return sum((await self.count_by_status()).values())

    def __len__(self) -> int:
        """Synchronous record count (0.1.8's ``len(backend)``) where the store allows it."""
        raise TypeError(f"len() is not supported for {type(self).__name__}: "
                        "use 'await backend.count()'")

    @abstractmethod
    async def get(self, task_id: str) -> TaskResult | None: ...

    @abstractmethod
    async def delete(self, task_id: str) -> bool: ...

    @abstractmethod
    async def clear(self) -> int:
        """Delete every record; returns how many were removed."""

    @abstractmethod
    async def list_by_status(self, status: TaskStatus | str, limit: int | None = None,
                             offset: int = 0) -> list[TaskResult]:
        """Records in ``status``, most recently updated first."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """Number of stored records per status value (every status present as a key)."""

    def store_nowait(self, result: TaskResult) -> None:
        """``store`` without a coroutine (``local`` backends only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a local backend")

    def final_nowait(self, task_id: str) -> TaskResult | None:
        """The record if it is final, else None, without a coroutine (``local`` backends only)."""
        raise NotImplementedError(f"{type(self).__name__} is not a local backend")

    async def search(self, query: str, limit: int = 50) -> list[TaskResult]:
        """Records whose id starts with ``query`` or whose name contains it (newest first)."""
        query = query.strip().lower()
        found: list[TaskResult] = []
        if not query:
            return found
        exact = await self.get(query)
        if exact is not None:
            return [exact]
        for status in TaskStatus:
            for record in await self.list_by_status(status, limit=1000):
                if record.task_id.startswith(query) or query in record.task_name.lower():
                    found.append(record)
        found.sort(key=_last_change, reverse=True)
        return found[:limit]

    async def wait_for(self, task_id: str, timeout: float | None = None) -> TaskResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskResult] = loop.create_future()
        waiters = self._waiters.setdefault(task_id, [])
        waiters.append(future)
        try:
            await self._watch(task_id)
            record = await self._get_if_final(task_id)
            if record is not None:
                return record
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise TaskTimeoutError(task_id, timeout) from None
        finally:
            waiters.remove(future)
            if not waiters and self._waiters.get(task_id) is waiters:
                del self._waiters[task_id]

    async def _get_if_final(self, task_id: str) -> TaskResult | None:
        """The record if it is final, else None; stores may skip decoding unfinished ones."""
        record = await self.get(task_id)
        return record if record is not None and record.is_complete else None

    async def _watch(self, task_id: str) -> None:
        """Make sure completions stored by other processes will reach :meth:`_notify`."""

    def _notify(self, result: TaskResult) -> None:
        for future in self._waiters.get(result.task_id, ()):
            if not future.done():
                future.set_result(result)


def _last_change(record: TaskResult) -> Any:
    return record.finished_at or record.started_at or record.submitted_at


def status_value(status: TaskStatus | str) -> str:
    """Accept a TaskStatus or its string value; reject anything else clearly."""
    try:
        return TaskStatus(status).value
    except ValueError:
        valid = ", ".join(s.value for s in TaskStatus)
        raise ValueError(f"Unknown task status {status!r}; expected one of: {valid}") from None
