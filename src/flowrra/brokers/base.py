"""The broker protocol: where queued tasks wait and how workers claim them.

Delivery is at-least-once. ``dequeue`` *claims* a task under a lease that the
worker renews with ``extend_leases`` while the task runs; a task is removed only
by ``ack`` (after its result is stored), ``requeue`` (a retry, atomically
re-scheduled) or ``dead_letter``. A lease that is not renewed within
``visibility_timeout`` expires and the task becomes claimable again, which is how
the work of a killed worker comes back.

Ordering: lower ``priority`` first, FIFO among equals, across every worker that
shares the broker. ``eta`` (epoch seconds) delays a task inside the broker, so a
waiting retry holds no worker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from flowrra.task import Task, _iso, utcnow
from flowrra.transports.base import EventTransport, LocalTransport


@dataclass(slots=True)
class DeadLetter:
    """A task that exhausted its retries or could not be decoded."""

    task_id: str
    task_name: str
    error: str
    failed_at: datetime
    payload: dict[str, Any] | None  # the task message, None if it could not be decoded
    raw: str | None = None  # the undecodable message, kept for inspection

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "error": self.error,
            "failed_at": _iso(self.failed_at),
            "payload": self.payload,
            "raw": self.raw,
        }

    @classmethod
    def for_task(cls, task: Task, error: str) -> DeadLetter:
        return cls(task.id, task.name, error, utcnow(), task.to_dict())


class Broker(ABC):
    #: True when queued tasks survive the death of the process that queued them.
    durable: ClassVar[bool] = False
    #: True when several processes can share this broker.
    shared: ClassVar[bool] = False
    #: URL schemes this class handles (used by :func:`flowrra.brokers.get_broker`).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: True when the queue lives in this process's memory, so the ``*_nowait``
    #: methods work. The app and worker then call them directly: on the in-process
    #: hot path a coroutine per broker call costs more than the call itself.
    local: ClassVar[bool] = False

    def __init__(self, *, visibility_timeout: float = 30.0) -> None:
        self.visibility_timeout = visibility_timeout

    async def connect(self) -> None:
        """Open connections; idempotent. Called by the app before first use."""

    def event_transport(self) -> EventTransport:
        """The transport that carries events between processes sharing this broker."""
        return LocalTransport()

    def default_backend_url(self) -> str | None:
        """Where results go when no backend is configured (shared brokers share results)."""
        return None

    async def close(self) -> None:
        """Release connections; queued tasks stay queued on durable brokers."""

    # -- producing ------------------------------------------------------------------
    @abstractmethod
    async def enqueue(self, task: Task, *, dedupe: bool = False) -> bool:
        """Queue ``task`` (delayed until ``task.eta`` if set).

        With ``dedupe=True`` a task whose id was already queued (or has run
        recently) is dropped and ``False`` is returned; schedulers rely on this
        to submit a slot exactly once.
        """

    @abstractmethod
    async def is_duplicate(self, task_id: str) -> bool:
        """True if ``enqueue(task, dedupe=True)`` would drop ``task_id`` right now."""

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        """Queue several tasks; network brokers override this with one round trip."""
        for task in tasks:
            await self.enqueue(task)

    @abstractmethod
    async def revoke(self, task_id: str) -> bool:
        """Remove a task that is still waiting (queued or delayed); True if it was."""

    # -- consuming ------------------------------------------------------------------
    @abstractmethod
    async def dequeue(self, queues: Sequence[str], worker_id: str,
                      timeout: float = 1.0) -> Task | None:
        """Claim the next due task of ``queues`` under a lease, waiting up to ``timeout``."""

    @abstractmethod
    async def ack(self, task: Task) -> None:
        """The task is finished (its result stored): forget it."""

    @abstractmethod
    async def requeue(self, task: Task) -> None:
        """Atomically finish this delivery and queue ``task`` again (``task.eta`` honoured)."""

    @abstractmethod
    async def release(self, tasks: Sequence[Task]) -> None:
        """Hand claimed-but-unstarted tasks back untouched (graceful stop)."""

    @abstractmethod
    async def extend_leases(self, tasks: Sequence[Task], worker_id: str) -> None:
        """Renew the leases of tasks that are still running on a live worker."""

    # -- the in-process fast path (``local`` brokers only) -------------------------------
    def enqueue_nowait(self, task: Task) -> None:
        """``enqueue`` without a coroutine (no dedupe)."""
        raise NotImplementedError(f"{type(self).__name__} is not a local broker")

    def dequeue_nowait(self, queues: Sequence[str], worker_id: str) -> Task | None:
        """Claim the next due task if there is one, without waiting."""
        raise NotImplementedError(f"{type(self).__name__} is not a local broker")

    def ack_nowait(self, task: Task) -> None:
        """``ack`` without a coroutine."""
        raise NotImplementedError(f"{type(self).__name__} is not a local broker")

    # -- dead letters ---------------------------------------------------------------
    @abstractmethod
    async def dead_letter(self, task: Task, error: str) -> None:
        """Atomically finish this delivery and keep the task in the dead-letter list."""

    @abstractmethod
    async def list_dead_letters(self, limit: int | None = None, offset: int = 0) -> list[DeadLetter]:
        """Newest first."""

    @abstractmethod
    async def retry_dead_letter(self, task_id: str) -> Task | None:
        """Queue a dead-lettered task again with its retries reset; None if unknown."""

    @abstractmethod
    async def purge_dead_letters(self, task_id: str | None = None) -> int:
        """Delete one dead letter (or all of them); returns how many were removed."""

    # -- introspection ----------------------------------------------------------------
    async def size(self) -> int:
        """Tasks waiting to be claimed (0.1.8's ``size()``; delayed ones not counted)."""
        return (await self.stats())["queued"]

    @abstractmethod
    async def stats(self) -> dict[str, int]:
        """Counts: ``queued`` (due now), ``delayed``, ``leased`` (claimed), ``dead``."""

    @abstractmethod
    async def register_worker(self, worker_id: str, info: dict[str, Any], ttl: float) -> None:
        """Record (or refresh) a worker's heartbeat; it disappears after ``ttl`` seconds."""

    @abstractmethod
    async def unregister_worker(self, worker_id: str) -> None: ...

    @abstractmethod
    async def list_workers(self) -> list[dict[str, Any]]:
        """Live workers' info dicts (each includes ``id`` and ``last_seen``)."""


def retry_dead_letter_task(letter: DeadLetter) -> Task | None:
    """The fresh task to queue when a dead letter is retried (None if undecodable)."""
    if letter.payload is None:
        return None
    task = Task.from_dict(letter.payload)
    task.current_retry = 0
    task.eta = None
    return task
