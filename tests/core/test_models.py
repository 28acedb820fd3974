"""Exceptions (exact messages, hierarchy) and the TaskResult / Task records."""

from __future__ import annotations

import asyncio
import inspect
import json
from datetime import UTC, datetime, timedelta

import pytest

from flowrra import (
    BackendError,
    ExecutorNotRunningError,
    FlowrraError,
    Task,
    TaskNotFoundError,
    TaskResult,
    TaskStatus,
    TaskTimeoutError,
)


def test_exception_messages() -> None:
    assert str(TaskNotFoundError("send_email")) == "Task 'send_email' not registered"
    assert str(TaskTimeoutError("abc123", 1.5)) == "Task 'abc123' did not complete within 1.5s"
    assert str(ExecutorNotRunningError()) == "Executor is not running. Call start() first."
    error = TaskTimeoutError("abc", 2)
    assert (error.task_id, error.timeout) == ("abc", 2)


@pytest.mark.parametrize("cls", [TaskNotFoundError, TaskTimeoutError, ExecutorNotRunningError,
                                 BackendError])
def test_exceptions_derive_from_flowrra_error(cls) -> None:
    assert issubclass(cls, FlowrraError) and issubclass(FlowrraError, Exception)


def test_task_timeout_error_is_a_timeout_error() -> None:
    for catch in (asyncio.TimeoutError, TimeoutError):
        with pytest.raises(catch):
            raise TaskTimeoutError("x", 1.0)


def _result(**changes) -> TaskResult:
    now = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    fields = dict(task_id="id1", status=TaskStatus.SUCCESS, task_name="mod.job", result={"n": [1, 2]},
                  error=None, submitted_at=now, started_at=now + timedelta(seconds=1),
                  finished_at=now + timedelta(seconds=3), retries=2, args=(1, "two"),
                  kwargs={"k": None})
    fields.update(changes)
    return TaskResult(**fields)


def test_to_dict_is_a_json_ready_property() -> None:
    assert isinstance(inspect.getattr_static(TaskResult, "to_dict"), property)
    data = _result().to_dict
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "success" and type(data["status"]) is str
    assert data["submitted_at"] == "2025-01-02T03:04:05.678000+00:00"
    assert data["finished_at"] == "2025-01-02T03:04:08.678000+00:00"
    for key in ("task_id", "status", "task_name", "result", "error", "submitted_at", "started_at",
                "finished_at", "retries", "args", "kwargs"):
        assert key in data, key
    assert (data["task_id"], data["task_name"], data["result"], data["retries"], data["args"],
            data["kwargs"]) == ("id1", "mod.job", {"n": [1, 2]}, 2, [1, "two"], {"k": None})


@pytest.mark.parametrize("status", list(TaskStatus))
def test_from_dict_round_trip(status: TaskStatus) -> None:
    original = _result(status=status, error="boom" if status is TaskStatus.FAILED else None)
    again = TaskResult.from_dict(json.loads(json.dumps(original.to_dict)))
    assert again == original
    assert again.submitted_at.tzinfo is not None


def test_from_dict_minimal_and_naive_datetimes() -> None:
    record = TaskResult.from_dict({"task_id": "x", "status": "pending",
                                   "submitted_at": "2025-01-01T00:00:00"})
    assert record.status is TaskStatus.PENDING and record.started_at is None
    assert record.submitted_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert (record.args, record.kwargs, record.retries) == ((), {}, 0)


def test_from_dict_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        TaskResult.from_dict({"task_id": "x", "status": "exploded"})


def test_unset_timestamps_serialize_as_none() -> None:
    data = TaskResult("x", TaskStatus.PENDING).to_dict
    assert data["started_at"] is None and data["finished_at"] is None


@pytest.mark.parametrize(("status", "complete", "success"), [
    (TaskStatus.PENDING, False, False),
    (TaskStatus.RUNNING, False, False),
    (TaskStatus.RETRYING, False, False),
    (TaskStatus.SUCCESS, True, True),
    (TaskStatus.FAILED, True, False),
    (TaskStatus.CANCELLED, True, False),
])
def test_is_complete_and_is_success(status: TaskStatus, complete: bool, success: bool) -> None:
    record = TaskResult("x", status)
    assert (record.is_complete, record.is_success) == (complete, success)


def test_task_message_fields_and_round_trip() -> None:
    task = Task("id", "name", (1, 2), {"a": 1}, max_retries=2, retry_delay=0.5, current_retry=1,
                priority=-3, cpu_bound=True)
    for name in ("id", "name", "args", "kwargs", "max_retries", "retry_delay", "current_retry",
                 "priority", "cpu_bound"):
        assert hasattr(task, name)
    assert Task.from_dict(json.loads(json.dumps(task.to_dict()))) == task
