"""The queued message (:class:`Task`) and the stored record of a run (:class:`TaskResult`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(slots=True)
class Task:
    """One unit of work as it travels through the broker.

    ``receipt`` is the broker's private handle for acknowledging this delivery
    (a stream id, a row id); it is never serialized.
    """

    id: str
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_delay: float = 1.0
    current_retry: int = 0
    priority: int = 0
    cpu_bound: bool = False
    timeout: float | None = None
    queue: str = "default"
    submitted_at: datetime | None = None
    eta: float | None = None
    receipt: Any = field(default=None, compare=False, repr=False)
    #: The pending record built at submit; only set when the task never left this
    #: process (in-memory broker), so the worker updates it instead of building anew.
    record: TaskResult | None = field(default=None, compare=False, repr=False)

    # Ordering compares priority only (as in 0.1.8), so ``sorted(tasks)`` orders by
    # priority; equality stays the dataclass field-by-field comparison.
    def __lt__(self, other: Task) -> bool:
        return self.priority < other.priority if isinstance(other, Task) else NotImplemented

    def __le__(self, other: Task) -> bool:
        return self.priority <= other.priority if isinstance(other, Task) else NotImplemented

    def __gt__(self, other: Task) -> bool:
        return self.priority > other.priority if isinstance(other, Task) else NotImplemented

    def __ge__(self, other: Task) -> bool:
        return self.priority >= other.priority if isinstance(other, Task) else NotImplemented

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "max_retries": self.max_retries,
            "retry_delay": self.retry_delay,
            "current_retry": self.current_retry,
            "priority": self.priority,
            "cpu_bound": self.cpu_bound,
            "timeout": self.timeout,
            "queue": self.queue,
            "submitted_at": _iso(self.submitted_at),
            "eta": self.eta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        return cls(
            id=data["id"],
            name=data["name"],
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            max_retries=int(data.get("max_retries", 3)),
            retry_delay=float(data.get("retry_delay", 1.0)),
            current_retry=int(data.get("current_retry", 0)),
            priority=int(data.get("priority", 0)),
            cpu_bound=bool(data.get("cpu_bound", False)),
            timeout=data.get("timeout"),
            queue=data.get("queue") or "default",
            submitted_at=_parse_dt(data.get("submitted_at")),
            eta=data.get("eta"),
        )


@dataclass(slots=True)
class TaskResult:
    """The stored state of a task; one record per task id, updated on every transition."""

    task_id: str
    status: TaskStatus
    task_name: str = ""
    result: Any = None
    error: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retries: int = 0
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None
    priority: int = 0
    queue: str = "default"
    worker: str | None = None
    next_retry_at: datetime | None = None
    dead_lettered: bool = False

    @property
    def is_complete(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status is TaskStatus.SUCCESS

    @property
    def runtime(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; a property (not a method) for compatibility with flowrra 0.1."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "task_name": self.task_name,
            "result": self.result,
            "error": self.error,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "retries": self.retries,
            "args": list(self.args),
            "kwargs": self.kwargs,
            "traceback": self.traceback,
            "priority": self.priority,
            "queue": self.queue,
            "worker": self.worker,
            "next_retry_at": _iso(self.next_retry_at),
            "dead_lettered": self.dead_lettered,
            "runtime": self.runtime,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        return cls(
            task_id=data["task_id"],
            status=TaskStatus(data["status"]),
            task_name=data.get("task_name") or "",
            result=data.get("result"),
            error=data.get("error"),
            submitted_at=_parse_dt(data.get("submitted_at")),
            started_at=_parse_dt(data.get("started_at")),
            finished_at=_parse_dt(data.get("finished_at")),
            retries=int(data.get("retries") or 0),
            args=tuple(data.get("args") or ()),
            kwargs=dict(data.get("kwargs") or {}),
            traceback=data.get("traceback"),
            priority=int(data.get("priority") or 0),
            queue=data.get("queue") or "default",
            worker=data.get("worker"),
            next_retry_at=_parse_dt(data.get("next_retry_at")),
            dead_lettered=bool(data.get("dead_lettered", False)),
        )

    def copy(self) -> TaskResult:
        return TaskResult(
            self.task_id, self.status, self.task_name, self.result, self.error,
            self.submitted_at, self.started_at, self.finished_at, self.retries,
            self.args, dict(self.kwargs), self.traceback, self.priority, self.queue,
            self.worker, self.next_retry_at, self.dead_lettered,
        )
