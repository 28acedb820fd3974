"""The in-process fast path: taken only when broker, results and events are all local."""

from __future__ import annotations

import pytest

from flowrra import Flowrra, TaskStatus
from flowrra.backends import InMemoryBackend
from flowrra.brokers import InMemoryBroker
from flowrra.task import Task, TaskResult


def test_default_app_takes_the_local_path(tmp_path) -> None:
    assert Flowrra().local
    shared = Flowrra.from_urls(f"sqlite:///{tmp_path / 'q.db'}")
    assert not shared.local
    # A local broker with a shared backend is not local either: records must be awaited.
    mixed = Flowrra(broker=InMemoryBroker(), backend=f"sqlite:///{tmp_path / 'r.db'}")
    assert not mixed.local


async def test_shared_stores_refuse_the_nowait_methods(tmp_path) -> None:
    app = Flowrra.from_urls(f"sqlite:///{tmp_path / 'q.db'}")
    task = Task("t1", "noop")
    with pytest.raises(NotImplementedError, match="SQLiteBroker is not a local broker"):
        app.broker.enqueue_nowait(task)
    with pytest.raises(NotImplementedError, match="not a local broker"):
        app.broker.dequeue_nowait(["default"], "w")
    with pytest.raises(NotImplementedError, match="not a local broker"):
        app.broker.ack_nowait(task)
    with pytest.raises(NotImplementedError, match="SQLiteBackend is not a local backend"):
        app.backend.store_nowait(TaskResult("t1", TaskStatus.PENDING))
    with pytest.raises(NotImplementedError, match="not a local backend"):
        app.backend.final_nowait("t1")


def test_final_nowait_returns_only_final_records() -> None:
    backend = InMemoryBackend()
    record = TaskResult("t1", TaskStatus.RUNNING)
    backend.store_nowait(record)
    assert backend.final_nowait("t1") is None
    assert backend.final_nowait("missing") is None
    record.status = TaskStatus.SUCCESS
    backend.store_nowait(record)
    assert backend.final_nowait("t1") is record


def test_drained_priorities_are_forgotten() -> None:
    """Every distinct priority gets a FIFO; once all are empty none is kept."""
    broker = InMemoryBroker()
    for priority in range(1000):
        broker.enqueue_nowait(Task(f"t{priority}", "noop", priority=priority))
    got = [broker.dequeue_nowait(["default"], "w") for _ in range(1000)]
    assert [t.priority for t in got] == list(range(1000))  # type: ignore[union-attr]
    assert broker.dequeue_nowait(["default"], "w") is None
    lanes = broker._ready["default"]
    assert lanes.fifos == {} and lanes.order == []


def test_nowait_and_async_paths_share_one_queue() -> None:
    broker = InMemoryBroker()
    first, second = Task("a", "noop", priority=5), Task("b", "noop", priority=1)
    broker.enqueue_nowait(first)
    broker.enqueue_nowait(second)
    assert broker.dequeue_nowait(["default"], "w") is second
    assert broker._leases == {"b": second}
    broker.ack_nowait(second)
    assert broker._leases == {}
    assert broker.dequeue_nowait(["default"], "w") is first
